/*
 * protocol_wsrelay_echo: an lws protocol plugin that is not the relay — every
 * message a client sends comes back to it, text as text, binary as binary.
 *
 * Protocol "wsrelay-echo", exported as libprotocol_wsrelay_echo.so's symbol
 * "wsrelay_echo" (lws derives it from the file name). Plain C and plain lws:
 * it knows nothing of wsrelay and loads into any lws server.
 *
 * Per-vhost options (pvo):
 *   "path"              the only URL path it accepts an upgrade on (default "/echo")
 *   "max_message_size"  larger messages close the connection with 1009 (default 65536)
 *
 * lws chooses this protocol when the client asks for it with
 * "Sec-WebSocket-Protocol: wsrelay-echo" (lws 4.1 selects WebSocket protocols
 * by that header, never by path); the path check is this plugin's own.
 */
#include <libwebsockets.h>

#include <stdlib.h>
#include <string.h>

#define ECHO_PROTOCOL_NAME "wsrelay-echo"

struct echo_msg {
	struct echo_msg *next;
	size_t len;
	int binary;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct echo_pss {
	struct echo_msg *head, *tail;
	unsigned char *rx;
	size_t rx_len;
	int rx_binary;
	size_t queued; /* bytes waiting to be written */
	int too_large;
};

struct echo_vhd {
	char path[256];
	size_t max_message_size;
};

static void
echo_free_all(struct echo_pss *pss)
{
	while (pss->head) {
		struct echo_msg *m = pss->head;

		pss->head = m->next;
		free(m);
	}
	pss->tail = NULL;
	free(pss->rx);
	pss->rx = NULL;
	pss->rx_len = 0;
	pss->queued = 0;
}

static int
echo_init(struct lws *wsi, const struct lws_protocol_vhost_options *pvo)
{
	struct echo_vhd *vhd = lws_protocol_vh_priv_zalloc(lws_get_vhost(wsi),
				lws_get_protocol(wsi), sizeof(*vhd));
	const struct lws_protocol_vhost_options *o;

	if (!vhd)
		return 1;
	lws_strncpy(vhd->path, "/echo", sizeof(vhd->path));
	vhd->max_message_size = 65536;

	o = lws_pvo_search(pvo, "path");
	if (o && o->value && o->value[0] == '/')
		lws_strncpy(vhd->path, o->value, sizeof(vhd->path));
	o = lws_pvo_search(pvo, "max_message_size");
	if (o && o->value && atol(o->value) > 0)
		vhd->max_message_size = (size_t)atol(o->value);

	lwsl_notice("%s: echo on %s (max %zu bytes)\n", ECHO_PROTOCOL_NAME,
		    vhd->path, vhd->max_message_size);
	return 0;
}

static int
echo_path_allowed(struct lws *wsi, const struct echo_vhd *vhd)
{
	char uri[256];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		return 0;
	return !strcmp(uri, vhd->path);
}

static int
echo_receive(struct lws *wsi, struct echo_pss *pss, const struct echo_vhd *vhd,
	     const void *in, size_t len)
{
	struct echo_msg *m;
	unsigned char *grown;

	if (lws_is_first_fragment(wsi)) {
		pss->rx_len = 0;
		pss->rx_binary = lws_frame_is_binary(wsi);
	}
	if (pss->rx_len + len > vhd->max_message_size) {
		pss->too_large = 1;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)"message too large", 17);
		return -1;
	}
	if (len) {
		grown = realloc(pss->rx, pss->rx_len + len);
		if (!grown)
			return -1;
		pss->rx = grown;
		memcpy(pss->rx + pss->rx_len, in, len);
		pss->rx_len += len;
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;

	m = malloc(sizeof(*m) + LWS_PRE + pss->rx_len);
	if (!m)
		return -1;
	m->next = NULL;
	m->len = pss->rx_len;
	m->binary = pss->rx_binary;
	if (pss->rx_len)
		memcpy(m->buf + LWS_PRE, pss->rx, pss->rx_len);
	if (pss->tail)
		pss->tail->next = m;
	else
		pss->head = m;
	pss->tail = m;
	pss->queued += m->len;
	pss->rx_len = 0;

	/* A client that sends faster than it reads waits: stop reading it. */
	if (pss->queued > 4 * vhd->max_message_size)
		lws_rx_flow_control(wsi, 0);
	lws_callback_on_writable(wsi);
	return 0;
}

static int
echo_writeable(struct lws *wsi, struct echo_pss *pss)
{
	struct echo_msg *m = pss->head;
	int n;

	if (!m)
		return 0;
	n = lws_write(wsi, m->buf + LWS_PRE, m->len,
		      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	if (n < (int)m->len)
		return -1;
	pss->head = m->next;
	if (!pss->head)
		pss->tail = NULL;
	pss->queued -= m->len;
	free(m);
	if (pss->head)
		lws_callback_on_writable(wsi);
	else
		lws_rx_flow_control(wsi, 1);
	return 0;
}

static int
callback_wsrelay_echo(struct lws *wsi, enum lws_callback_reasons reason,
		      void *user, void *in, size_t len)
{
	struct echo_pss *pss = (struct echo_pss *)user;
	struct echo_vhd *vhd = (struct echo_vhd *)lws_protocol_vh_priv_get(
				lws_get_vhost(wsi), lws_get_protocol(wsi));

	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		return echo_init(wsi, (const struct lws_protocol_vhost_options *)in);

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* lws bound this protocol by its name: is it our path too? */
		if (!vhd || !echo_path_allowed(wsi, vhd)) {
			lwsl_notice("%s: refused an upgrade outside %s\n",
				    ECHO_PROTOCOL_NAME, vhd ? vhd->path : "?");
			return 1;
		}
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (!vhd || !pss)
			return -1;
		return echo_receive(wsi, pss, vhd, in, len);

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss)
			return -1;
		return echo_writeable(wsi, pss);

	case LWS_CALLBACK_CLOSED:
		if (pss)
			echo_free_all(pss);
		return 0;

	default:
		break;
	}

	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

#define LWS_PLUGIN_PROTOCOL_WSRELAY_ECHO { \
		ECHO_PROTOCOL_NAME, \
		callback_wsrelay_echo, \
		sizeof(struct echo_pss), \
		4096, \
		0, NULL, 0 \
	}

#if !defined(LWS_PLUGIN_STATIC)

static const struct lws_protocols echo_protocols[] = {
	LWS_PLUGIN_PROTOCOL_WSRELAY_ECHO
};

LWS_VISIBLE const lws_plugin_protocol_t wsrelay_echo = {
	.hdr = {
		"wsrelay echo",
		"lws_protocol_plugin",
		LWS_PLUGIN_API_MAGIC
	},

	.protocols = echo_protocols,
	.count_protocols = LWS_ARRAY_SIZE(echo_protocols),
	.extensions = NULL,
	.count_extensions = 0,
};

#endif
