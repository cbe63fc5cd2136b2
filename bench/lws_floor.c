/*
 * lws_floor.c: the floor wsrelay is measured against. A libwebsockets 4.1
 * server with no JSON, no Lua and no routing: "--mode echo" writes every
 * message back to its sender, "--mode broadcast" writes it to every other
 * connection (like lws's own mirror protocol). Messages are reassembled from
 * fragments, kept once in a refcounted buffer with LWS_PRE headroom shared by
 * every recipient's queue, and written one per WRITEABLE callback, the way
 * lws wants (the same shape wsrelay's design asks of itself).
 *
 * usage: lws-floor [--port 7700] [--host 127.0.0.1] [--mode echo|broadcast]
 */
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg {
	int refs;
	int binary;
	size_t len;
	unsigned char buf[]; /* LWS_PRE + len */
};

struct pss {
	struct lws *wsi;
	struct pss *prev, *next; /* every open connection */
	struct msg **q;          /* ring of messages to write, oldest at head */
	unsigned int head, count, cap;
	unsigned char *rx;       /* fragments of the message being received */
	size_t rx_len, rx_cap;
};

static int broadcast;
static struct pss *all;
static volatile sig_atomic_t interrupted;

static void msg_unref(struct msg *m)
{
	if (--m->refs == 0)
		free(m);
}

static int q_push(struct pss *p, struct msg *m)
{
	if (p->count == p->cap) {
		unsigned int ncap = p->cap ? p->cap * 2 : 8, i;
		struct msg **nq = malloc(ncap * sizeof(*nq));

		if (!nq)
			return -1;
		for (i = 0; i < p->count; i++)
			nq[i] = p->q[(p->head + i) % p->cap];
		free(p->q);
		p->q = nq;
		p->head = 0;
		p->cap = ncap;
	}
	p->q[(p->head + p->count) % p->cap] = m;
	p->count++;
	m->refs++;
	lws_callback_on_writable(p->wsi);
	return 0;
}

static int
callback_floor(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	       void *in, size_t len)
{
	struct pss *pss = (struct pss *)user, *p;
	struct msg *m;
	int n;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(pss, 0, sizeof(*pss));
		pss->wsi = wsi;
		pss->next = all;
		if (all)
			all->prev = pss;
		all = pss;
		break;

	case LWS_CALLBACK_CLOSED:
		if (pss->prev)
			pss->prev->next = pss->next;
		else if (all == pss)
			all = pss->next;
		if (pss->next)
			pss->next->prev = pss->prev;
		while (pss->count) {
			msg_unref(pss->q[pss->head]);
			pss->head = (pss->head + 1) % pss->cap;
			pss->count--;
		}
		free(pss->q);
		free(pss->rx);
		pss->q = NULL;
		pss->rx = NULL;
		break;

	case LWS_CALLBACK_RECEIVE:
		if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi)) {
			m = malloc(sizeof(*m) + LWS_PRE + len);
			if (!m)
				return -1;
			memcpy(m->buf + LWS_PRE, in, len);
			m->len = len;
		} else {
			if (pss->rx_len + len > pss->rx_cap) {
				size_t ncap = (pss->rx_len + len) * 2;
				unsigned char *nrx = realloc(pss->rx, ncap);

				if (!nrx)
					return -1;
				pss->rx = nrx;
				pss->rx_cap = ncap;
			}
			memcpy(pss->rx + pss->rx_len, in, len);
			pss->rx_len += len;
			if (!lws_is_final_fragment(wsi))
				break;
			m = malloc(sizeof(*m) + LWS_PRE + pss->rx_len);
			if (!m)
				return -1;
			memcpy(m->buf + LWS_PRE, pss->rx, pss->rx_len);
			m->len = pss->rx_len;
			pss->rx_len = 0;
		}
		m->refs = 1; /* ours until the fan-out is done */
		m->binary = lws_frame_is_binary(wsi);
		if (broadcast) {
			for (p = all; p; p = p->next)
				if (p != pss && q_push(p, m))
					return -1;
		} else if (q_push(pss, m))
			return -1;
		msg_unref(m);
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss->count)
			break;
		m = pss->q[pss->head];
		/* lws writes the frame header into the LWS_PRE bytes: the same
		 * header for every recipient, so the buffer can be shared. */
		n = lws_write(wsi, m->buf + LWS_PRE, m->len,
			      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
		if (n < (int)m->len)
			return -1;
		pss->head = (pss->head + 1) % pss->cap;
		pss->count--;
		msg_unref(m);
		if (pss->count)
			lws_callback_on_writable(wsi);
		break;

	default:
		break;
	}

	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "floor", callback_floor, sizeof(struct pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void sigint_handler(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_context *context;
	const char *host = "127.0.0.1";
	int port = 7700, i, n = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "broadcast"))
				broadcast = 1;
			else if (strcmp(argv[i], "echo")) {
				fprintf(stderr, "lws-floor: --mode echo|broadcast\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: lws-floor [--port N] [--host ADDR] "
					"[--mode echo|broadcast]\n");
			return 2;
		}
	}

	signal(SIGINT, sigint_handler);
	signal(SIGTERM, sigint_handler);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	memset(&info, 0, sizeof info);
	info.port = port;
	info.iface = host;
	info.protocols = protocols;

	context = lws_create_context(&info);
	if (!context) {
		fprintf(stderr, "lws-floor: lws_create_context failed\n");
		return 1;
	}
	printf("lws-floor %s listening on ws://%s:%d/\n",
	       broadcast ? "broadcast" : "echo", host, port);
	fflush(stdout);

	while (n >= 0 && !interrupted)
		n = lws_service(context, 0);

	lws_context_destroy(context);
	return 0;
}
