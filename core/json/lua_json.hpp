// lua_json: conversion between JSON text / cJSON trees and Lua values.
// Owns: the JSON-array metatable (registry key) and the null sentinel.
// Uses: cJSON, Lua 5.4 (C++ build). Never raises Lua errors except where noted:
// callers outside a protected call rely on that.
//
// Mapping: object ⇄ table with string keys; array ⇄ table 1..n marked with the
// array metatable (so [] survives a round trip); null ⇄ relay.null (a light
// userdata NULL); numbers ⇄ integer when integral and exact, else float.
#pragma once

#include "json/flat.hpp"

#include <cjson/cJSON.h>
#include <lua.hpp>

#include <string>
#include <string_view>

namespace wsrelay::json {

// Deepest nesting accepted either way; cJSON refuses deeper input itself.
inline constexpr int kMaxDepth = 1000;

// Installs the array metatable in the registry. Call once per lua_State.
void install_lua_json(lua_State* L);

// Pushes the value of node. Raises only Lua memory errors (call inside a pcall).
void push_json(lua_State* L, const cJSON* node);

// Pushes a scanned flat object: the same table push_json gives for the
// cJSON tree of the same text. Raises only Lua memory errors.
void push_flat_object(lua_State* L, const FlatObject& object);

// Pushes the sentinel used for JSON null.
void push_null(lua_State* L);
bool is_null(lua_State* L, int index);

// Pushes the array metatable (for relay.json.array()).
void push_array_metatable(lua_State* L);

// Pushes the raw-JSON metatable: a userdata carrying it (its user value is the
// text) is encoded as that text verbatim (relay.json.raw), so an upstream
// event can be wrapped without decoding and re-encoding it.
void push_raw_metatable(lua_State* L);

// Appends the JSON encoding of the value at index to out. On failure returns
// false with a reason naming where ("field 'data.x': cannot encode a function").
// Never raises.
bool encode_lua(lua_State* L, int index, std::string& out, std::string& error);

// Appends s as a JSON string literal (quoted, escaped).
void append_json_string(std::string& out, std::string_view s);

}  // namespace wsrelay::json
