/*
 * embed_host: an existing libwebsockets server that adds the wsrelay relay.
 *
 * It stands for any lws application: it has its own WebSocket protocol
 * ("host-shout": answers every text message in upper case) and its own HTTP
 * mount (the files of a folder at "/"). The relay joins it on the same port
 * in one of two ways, chosen at build time:
 *
 *   default            lws_plugins_init() loads libprotocol_wsrelay.so from a
 *                      folder: this program links only libwebsockets and
 *                      contains no wsrelay code at all.
 *   EMBED_STATIC       the relay is linked in (wsrelay::relay) and its
 *                      protocols come from wsrelay_protocols().
 *
 * Either way the relay is configured only by per-vhost options (pvo) on the
 * protocol "wsrelay": here "script" + "path" (one endpoint), or "config"
 * (a wsrelay JSON config file) with --config.
 *
 * Clients pick the relay with "Sec-WebSocket-Protocol: wsrelay" (lws 4.1
 * chooses WebSocket protocols by that header; without it they get this
 * host's first protocol). The relay's HTTP routes (/healthz, /status) are
 * mounted under /relay with an LWSMPRO_CALLBACK mount.
 *
 * usage: embed_host --port N --www DIR (--script FILE --path /relay/ws | --config FILE)
 *                   [--plugins DIR]      (the folder of libprotocol_wsrelay.so)
 * Prints "listening on ws://127.0.0.1:PORT" once it serves.
 */
#include <libwebsockets.h>

#if defined(EMBED_STATIC)
#include <wsrelay/wsrelay.h>
#endif

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t interrupted;
static struct lws_context *context;

/* ---- the host's own protocol ---------------------------------------------- */

struct shout_pss {
	char buf[LWS_PRE + 1024];
	size_t len;
	int pending;
};

static int
callback_host_shout(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct shout_pss *pss = (struct shout_pss *)user;
	size_t i;

	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		if (len > sizeof(pss->buf) - LWS_PRE || pss->pending)
			return -1; /* keep the example small: one short message at a time */
		for (i = 0; i < len; i++)
			pss->buf[LWS_PRE + i] = (char)toupper(((const unsigned char *)in)[i]);
		pss->len = len;
		pss->pending = 1;
		lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss->pending)
			return 0;
		pss->pending = 0;
		if (lws_write(wsi, (unsigned char *)pss->buf + LWS_PRE, pss->len,
			      LWS_WRITE_TEXT) < (int)pss->len)
			return -1;
		return 0;

	default:
		break;
	}
	/* Everything else, including HTTP for the file mount, is lws's. */
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols host_protocol = {
	"host-shout", callback_host_shout, sizeof(struct shout_pss), 1024, 0, NULL, 0
};

/* ---- mounts: the host's files, the relay's HTTP routes ---------------------- */

/*
 * lws 4.1 hands a LWSMPRO_CALLBACK mount's protocol the URI after the
 * mountpoint for POST but the whole URI for GET, unless .protocol is set
 * too: then both get "/healthz" for "/relay/healthz".
 */
static struct lws_http_mount relay_mount = {
	.mountpoint = "/relay",
	.origin = "wsrelay",		/* the protocol that answers */
	.protocol = "wsrelay",
	.origin_protocol = LWSMPRO_CALLBACK,
	.mountpoint_len = 6,
};

static struct lws_http_mount files_mount = {
	.mount_next = &relay_mount,
	.mountpoint = "/",
	.def = "index.html",
	.origin_protocol = LWSMPRO_FILE,
	.mountpoint_len = 1,
};

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
	if (context)
		lws_cancel_service(context);
}

static const char *
arg(int argc, const char **argv, const char *name)
{
	return lws_cmdline_option(argc, argv, name);
}

int
main(int argc, const char **argv)
{
	const char *port = arg(argc, argv, "--port"), *www = arg(argc, argv, "--www"),
		   *script = arg(argc, argv, "--script"), *path = arg(argc, argv, "--path"),
		   *config = arg(argc, argv, "--config");
	struct lws_protocol_vhost_options pvo_path = { NULL, NULL, "path", path };
	struct lws_protocol_vhost_options pvo_script = { &pvo_path, NULL, "script", script };
	struct lws_protocol_vhost_options pvo_config = { NULL, NULL, "config", config };
	struct lws_protocol_vhost_options pvo = { NULL, NULL, "wsrelay", "" };
	const struct lws_protocols *pprotocols[8];
	struct lws_context_creation_info info;
	struct lws_vhost *vhost;
	int n = 0, i;
#if defined(EMBED_STATIC)
	const struct lws_protocols *relay;
	size_t count;
#else
	const char *plugins_dir = arg(argc, argv, "--plugins");
	const char *dirs[] = { plugins_dir, NULL };
	struct lws_plugin *plugins = NULL, *p;
#endif

	if (!port || !www || (!config && (!script || !path))) {
		fprintf(stderr, "usage: embed_host --port N --www DIR "
			"(--script FILE --path /relay/ws | --config FILE) [--plugins DIR]\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	/* 1. The relay's protocols: from the plugin, or linked in. */
	n = 0;
	pprotocols[n++] = &host_protocol; /* first: the default for clients naming none */
#if defined(EMBED_STATIC)
	relay = wsrelay_protocols(&count);
	for (i = 0; i < (int)count; i++)
		pprotocols[n++] = &relay[i];
#else
	if (!plugins_dir) {
		fprintf(stderr, "embed_host: --plugins DIR (the folder of libprotocol_wsrelay.so)\n");
		return 2;
	}
	/* The filter "wsrelay" is the symbol lws derives from the file name. */
	lws_plugins_init(&plugins, dirs, "lws_protocol_plugin", "wsrelay", NULL, NULL);
	if (!plugins) {
		fprintf(stderr, "embed_host: no libprotocol_wsrelay.so loaded from %s\n", plugins_dir);
		return 1;
	}
	for (p = plugins; p; p = p->list) {
		const lws_plugin_protocol_t *plpr = (const lws_plugin_protocol_t *)p->hdr;

		/* Both: "wsrelay" and its upstream client "wsrelay-upstream". */
		for (i = 0; i < plpr->count_protocols && n < 7; i++)
			pprotocols[n++] = &plpr->protocols[i];
	}
#endif
	pprotocols[n] = NULL;

	/* 2. The relay's configuration: per-vhost options of "wsrelay". */
	pvo.options = config ? &pvo_config : &pvo_script;

	memset(&info, 0, sizeof info);
	info.port = atoi(port);
	/* lws 4.1 binds an IPv6 socket: an IPv4-mapped address binds exactly
	 * the loopback ("127.0.0.1" would silently bind every interface). */
	info.iface = "::ffff:127.0.0.1";
	info.pprotocols = pprotocols;
	info.pvo = &pvo;
	files_mount.origin = www;
	info.mounts = &files_mount;
	info.vhost_name = "embed-host";
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8;

	context = lws_create_context(&info);
	if (!context) {
		fprintf(stderr, "embed_host: lws_create_context failed\n");
		return 1;
	}
	vhost = lws_create_vhost(context, &info);
	if (!vhost) {
		fprintf(stderr, "embed_host: cannot listen on port %s\n", port);
		lws_context_destroy(context);
		return 1;
	}
	printf("embed_host: listening on ws://127.0.0.1:%d (host-shout, wsrelay%s)\n",
	       lws_get_vhost_listen_port(vhost),
#if defined(EMBED_STATIC)
	       " linked in"
#else
	       " from its plugin"
#endif
	       );
	fflush(stdout);

	n = 0;
	while (n >= 0 && !interrupted)
		n = lws_service(context, 0);

	/* The relay's code lives in the plugin: the context goes first. */
	lws_context_destroy(context);
#if !defined(EMBED_STATIC)
	lws_plugins_destroy(&plugins, NULL, NULL);
#endif
	return 0;
}
