/*
 * greeting: an extension plugin built outside the wsrelay tree, against an
 * installed wsrelay (find_package(wsrelay) or pkg-config wsrelay).
 *
 *   local greeting = require "relay.greeting"
 *   greeting.hello("ada")   -> "Hello, ada!"   (the word comes from options)
 *   greeting.count()        -> greetings so far on this endpoint
 *
 * and a filter: a client message "/hello" is answered by the plugin itself,
 * before (and instead of) the script.
 *
 * File libwsrelay_ext_greeting.so: lws looks up the symbol "ext_greeting"
 * (after the first '_', up to the first '.').
 */
#include <wsrelay/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct greeting {
	const wsrelay_api *api;
	wsrelay_host *host;
	char word[64];
	unsigned long count;
};

/* Options are JSON: {"word": "Hi"}. A real plugin would use a JSON parser;
 * this one reads the one string it needs. */
static void
read_word(const char *options, char *word, size_t len)
{
	const char *p = strstr(options, "\"word\"");
	size_t n = 0;

	snprintf(word, len, "Hello");
	if (!p || !(p = strchr(p + 6, '"')))
		return;
	p++;
	while (p[n] && p[n] != '"' && n + 1 < len)
		n++;
	memcpy(word, p, n);
	word[n] = '\0';
}

static int
create(const wsrelay_api *api, wsrelay_host *host, const char *options,
       void **state, char *error, size_t error_len)
{
	struct greeting *g = calloc(1, sizeof(*g));

	if (!g) {
		snprintf(error, error_len, "out of memory");
		return 1;
	}
	g->api = api;
	g->host = host;
	read_word(options, g->word, sizeof(g->word));
	*state = g;
	api->log(host, WSRELAY_LOG_INFO, "greeting ready");
	return 0;
}

static void
destroy(void *state)
{
	free(state);
}

static int
hello(void *state, wsrelay_call *call)
{
	struct greeting *g = state;
	size_t len;
	const char *name = g->api->arg_string(call, 1, &len);
	char text[256];
	int n;

	if (!name) {
		g->api->error(call, "hello: the name must be a string");
		return -1;
	}
	n = snprintf(text, sizeof(text), "%s, %.*s!", g->word, (int)len, name);
	g->count++;
	g->api->push_string(call, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
	return 1;
}

static int
count(void *state, wsrelay_call *call)
{
	struct greeting *g = state;

	g->api->push_number(call, (double)g->count);
	return 1;
}

static int
before_message(void *state, const wsrelay_message *m)
{
	struct greeting *g = state;
	char reply[128];
	int n;

	if (m->binary || m->len != 6 || memcmp(m->data, "/hello", 6))
		return WSRELAY_FILTER_PASS;
	g->count++;
	n = snprintf(reply, sizeof(reply), "{\"type\":\"greeting\",\"text\":\"%s from a plugin\"}", g->word);
	g->api->send(m->session, reply, (size_t)n, 0);
	return WSRELAY_FILTER_DROP;
}

static const wsrelay_function_reg functions[] = {
	{"hello", hello}, {"count", count}, {NULL, NULL}
};
static const wsrelay_module modules[] = {{"greeting", functions}};

WSRELAY_PLUGIN_EXPORT(ext_greeting) = {
	WSRELAY_PLUGIN_HEADER("greeting"),
	WSRELAY_PLUGIN_ABI_VERSION,
	"greetings: require \"relay.greeting\", and /hello answered by a filter",
	create,
	destroy,
	modules,
	1,
	before_message,
	NULL,
	NULL,
	0,
};
