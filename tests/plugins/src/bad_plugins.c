/*
 * Plugins that must be refused, one per shared object, picked by a define:
 *   BAD_NOSYMBOL  exports a name lws does not derive from the file name
 *   BAD_MAGIC     lws_plugin_header_t with an outdated api_magic
 *   BAD_CLASS     a class that is neither lws_protocol_plugin nor wsrelay_plugin
 *   BAD_ABI       a wsrelay_plugin built against another ABI version
 *   GOOD_PROTOCOL a valid protocol plugin (named by GOOD_SYMBOL)
 */
#include <wsrelay/plugin.h>

static int
cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{PROTOCOL_NAME, cb, 0, 0, 0, NULL, 0}
};

#if defined(BAD_NOSYMBOL)
LWS_VISIBLE const lws_plugin_protocol_t not_what_lws_looks_for = {
	{"bad", "lws_protocol_plugin", LWS_PLUGIN_API_MAGIC}, protocols, NULL, 1, 0};
#elif defined(BAD_MAGIC)
LWS_VISIBLE const lws_plugin_protocol_t SYMBOL = {
	{"bad", "lws_protocol_plugin", 1}, protocols, NULL, 1, 0};
#elif defined(BAD_CLASS)
LWS_VISIBLE const lws_plugin_protocol_t SYMBOL = {
	{"bad", "some_other_class", LWS_PLUGIN_API_MAGIC}, protocols, NULL, 1, 0};
#elif defined(BAD_ABI)
LWS_VISIBLE const wsrelay_plugin SYMBOL = {
	WSRELAY_PLUGIN_HEADER("oldabi"), 999, "from another age",
	NULL, NULL, NULL, 0, NULL, NULL, NULL, 0};
#elif defined(GOOD_PROTOCOL)
LWS_VISIBLE const lws_plugin_protocol_t SYMBOL = {
	{"good", "lws_protocol_plugin", LWS_PLUGIN_API_MAGIC}, protocols, NULL, 1, 0};
#endif
#if defined(NOT_A_PLUGIN)
/* Links, loads, exports the right name: but it is not a plugin header. */
LWS_VISIBLE const char notaplugin[] = "just a string, not an lws_plugin_header_t";
#endif
