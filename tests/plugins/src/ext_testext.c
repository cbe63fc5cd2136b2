/*
 * libwsrelay_ext_testext.so: an extension plugin written in C against
 * <wsrelay/plugin.h> only, exercising every hook and API call the tests
 * check (tests/integration/test_plugins_extensions.cpp).
 *
 *   module relay.testext: echo(...), json(table), session_info(session),
 *     set_attr(session, key, value), get_attr(session, key), publish(channel,
 *     text), send(session, text), fail(message), options(), stats(), setting(key)
 *   before_message: drops any message starting with "DROP", counts the rest
 *     into session.attrs.filtered (as text)
 *   after_message: counts messages the script handled
 *   auth provider "static": token "letmein" -> user "tester", {"role":"admin"}
 */
#include <wsrelay/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct state {
	const wsrelay_api *api;
	wsrelay_host *host;
	char *options;
	unsigned long before, dropped, after;
};

static int
t_create(const wsrelay_api *api, wsrelay_host *host, const char *options_json,
	 void **out, char *error, size_t error_len)
{
	struct state *s;

	if (strstr(options_json, "\"fail_create\"")) {
		snprintf(error, error_len, "told to fail by its options");
		return 1;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return 1;
	s->api = api;
	s->host = host;
	s->options = strdup(options_json);
	*out = s;
	api->log(host, WSRELAY_LOG_INFO, "testext created");
	return 0;
}

static void
t_destroy(void *state)
{
	struct state *s = state;

	if (!s)
		return;
	free(s->options);
	free(s);
}

/* echo(...): every argument back, described: "string:x", "number:1", ... */
static int
f_echo(void *state, wsrelay_call *call)
{
	struct state *s = state;
	char buf[128];
	int i, n = s->api->arg_count(call);
	size_t len;

	for (i = 1; i <= n; i++) {
		switch (s->api->arg_type(call, i)) {
		case WSRELAY_TYPE_NIL:
			s->api->push_string(call, "nil", 3);
			break;
		case WSRELAY_TYPE_BOOLEAN:
			s->api->push_string(call, s->api->arg_boolean(call, i) ? "boolean:true" : "boolean:false",
					    s->api->arg_boolean(call, i) ? 12 : 13);
			break;
		case WSRELAY_TYPE_NUMBER:
			snprintf(buf, sizeof(buf), "number:%g", s->api->arg_number(call, i));
			s->api->push_string(call, buf, strlen(buf));
			break;
		case WSRELAY_TYPE_STRING: {
			const char *str = s->api->arg_string(call, i, &len);

			snprintf(buf, sizeof(buf), "string:%.*s", (int)len, str);
			s->api->push_string(call, buf, strlen(buf));
			break;
		}
		case WSRELAY_TYPE_TABLE:
			s->api->push_string(call, "table", 5);
			break;
		case WSRELAY_TYPE_SESSION:
			s->api->push_string(call, "session", 7);
			break;
		default:
			s->api->push_string(call, "other", 5);
			break;
		}
	}
	return n;
}

/* json(t): the table through JSON and back. */
static int
f_json(void *state, wsrelay_call *call)
{
	struct state *s = state;
	size_t len;
	const char *text = s->api->arg_json(call, 1, &len);

	if (!text) {
		s->api->error(call, "json: argument 1 must be an encodable table");
		return -1;
	}
	s->api->push_json(call, text, len);
	s->api->push_string(call, text, len);
	return 2;
}

static wsrelay_session *
need_session(struct state *s, wsrelay_call *call)
{
	wsrelay_session *session = s->api->arg_session(call, 1);

	if (!session)
		s->api->error(call, "argument 1 must be an open session");
	return session;
}

static int
f_session_info(void *state, wsrelay_call *call)
{
	struct state *s = state;
	wsrelay_session *session = need_session(s, call);
	const char *user;

	if (!session)
		return -1;
	s->api->push_string(call, s->api->session_id(session), strlen(s->api->session_id(session)));
	user = s->api->session_user(session);
	if (user)
		s->api->push_string(call, user, strlen(user));
	else
		s->api->push_nil(call);
	return 2;
}

static int
f_set_attr(void *state, wsrelay_call *call)
{
	struct state *s = state;
	wsrelay_session *session = need_session(s, call);
	const char *key, *value;
	size_t len;

	if (!session)
		return -1;
	key = s->api->arg_string(call, 2, NULL);
	value = s->api->arg_string(call, 3, &len);
	if (!key) {
		s->api->error(call, "set_attr: key must be a string");
		return -1;
	}
	s->api->push_boolean(call, s->api->session_set_attr(s->host, session, key, value, len) == 0);
	return 1;
}

static int
f_get_attr(void *state, wsrelay_call *call)
{
	struct state *s = state;
	wsrelay_session *session = need_session(s, call);
	const char *key, *value;
	size_t len;

	if (!session)
		return -1;
	key = s->api->arg_string(call, 2, NULL);
	if (!key) {
		s->api->error(call, "get_attr: key must be a string");
		return -1;
	}
	value = s->api->session_attr(s->host, session, key, &len);
	if (value)
		s->api->push_string(call, value, len);
	else
		s->api->push_nil(call);
	return 1;
}

static int
f_publish(void *state, wsrelay_call *call)
{
	struct state *s = state;
	size_t len;
	const char *channel = s->api->arg_string(call, 1, NULL);
	const char *text = s->api->arg_string(call, 2, &len);

	if (!channel || !text) {
		s->api->error(call, "publish: channel and text must be strings");
		return -1;
	}
	s->api->push_number(call, (double)s->api->publish(s->host, channel, text, len, NULL));
	return 1;
}

static int
f_send(void *state, wsrelay_call *call)
{
	struct state *s = state;
	wsrelay_session *session = need_session(s, call);
	size_t len;
	const char *text;

	if (!session)
		return -1;
	text = s->api->arg_string(call, 2, &len);
	if (!text) {
		s->api->error(call, "send: text must be a string");
		return -1;
	}
	s->api->push_number(call, s->api->send(session, text, len, 0));
	return 1;
}

static int
f_fail(void *state, wsrelay_call *call)
{
	struct state *s = state;
	const char *message = s->api->arg_string(call, 1, NULL);

	s->api->error(call, message ? message : "failed");
	return -1;
}

static int
f_options(void *state, wsrelay_call *call)
{
	struct state *s = state;

	if (s->api->push_json(call, s->options, strlen(s->options)))
		s->api->push_nil(call);
	return 1;
}

static int
f_stats(void *state, wsrelay_call *call)
{
	struct state *s = state;

	s->api->push_number(call, (double)s->before);
	s->api->push_number(call, (double)s->dropped);
	s->api->push_number(call, (double)s->after);
	return 3;
}

static int
f_setting(void *state, wsrelay_call *call)
{
	struct state *s = state;
	const char *key = s->api->arg_string(call, 1, NULL);
	const char *value = key ? s->api->setting(s->api->call_host(call), key) : NULL;

	if (value)
		s->api->push_string(call, value, strlen(value));
	else
		s->api->push_nil(call);
	return 1;
}

static int
t_before(void *state, const wsrelay_message *m)
{
	static const char dropped[] = "{\"type\":\"dropped\"}";
	struct state *s = state;
	char count[32];

	s->before++;
	if (m->len >= 4 && !memcmp(m->data, "DROP", 4)) {
		s->dropped++;
		s->api->send(m->session, dropped, strlen(dropped), 0);
		return WSRELAY_FILTER_DROP;
	}
	snprintf(count, sizeof(count), "%lu", s->before - s->dropped);
	s->api->session_set_attr(s->host, m->session, "filtered", count, strlen(count));
	return WSRELAY_FILTER_PASS;
}

static void
t_after(void *state, const wsrelay_message *m)
{
	struct state *s = state;

	(void)m;
	s->after++;
}

static void
t_auth(void *state, const char *token, size_t len, wsrelay_auth *auth)
{
	struct state *s = state;

	if (len == 7 && !memcmp(token, "letmein", 7))
		s->api->auth_accept(auth, "tester", "{\"role\":\"admin\"}");
	else
		s->api->auth_reject(auth, "wrong token");
}

static const wsrelay_function_reg functions[] = {
	{"echo", f_echo},		{"json", f_json},
	{"session_info", f_session_info}, {"set_attr", f_set_attr},
	{"get_attr", f_get_attr},	{"publish", f_publish},
	{"send", f_send},		{"fail", f_fail},
	{"options", f_options},		{"stats", f_stats},
	{"setting", f_setting},		{NULL, NULL}
};

static const wsrelay_module modules[] = {{"testext", functions}};
static const wsrelay_auth_provider providers[] = {{"static", t_auth}};

WSRELAY_PLUGIN_EXPORT(ext_testext) = {
	WSRELAY_PLUGIN_HEADER("testext"),
	WSRELAY_PLUGIN_ABI_VERSION,
	"test extension: every hook",
	t_create,
	t_destroy,
	modules,
	1,
	t_before,
	t_after,
	providers,
	1,
};
