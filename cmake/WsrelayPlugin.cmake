# wsrelay_add_plugin(<name> SOURCES <file>... [LIBRARIES <target>...]
#                    [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds lib<name>.so, a plugin libwebsockets' lws_plugins_init() can load:
# a protocol plugin (class "lws_protocol_plugin") or a wsrelay extension
# plugin (class "wsrelay_plugin", include <wsrelay/plugin.h>).
#
# lws looks up the exported object under the name it derives from the file
# name: everything after the first '_' or '-', cut at the first '.'. So
# <name> must contain '_' or '-': protocol_wsrelay_echo ->
# libprotocol_wsrelay_echo.so -> symbol "wsrelay_echo"; wsrelay_ext_jwt ->
# libwsrelay_ext_jwt.so -> symbol "ext_jwt". lws 4.1 also refuses, without a
# word, a symbol shorter than 6 characters: so does this function, loudly.
#
# Symbols are hidden except what the source marks LWS_VISIBLE (the plugin
# object), so a plugin's internals never bind to another copy of the same
# code in the process. Undefined symbols fail the link, not the dlopen.
#
# Used by wsrelay's own build and, through find_package(wsrelay), by
# plugins built out of tree (see examples/plugins/).
include_guard(GLOBAL)
include(GNUInstallDirs)

if(NOT DEFINED WSRELAY_PLUGIN_INSTALL_DIR)
  set(WSRELAY_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/wsrelay/plugins)
endif()

function(wsrelay_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES")
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "wsrelay_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT name MATCHES "[_-]([^.]+)")
    message(FATAL_ERROR "wsrelay_add_plugin(${name}): the name needs a '_' or '-' followed by the "
                        "symbol lws will look up (lib${name}.so)")
  endif()
  string(REGEX MATCH "[_-]([^.]+)" _ "${name}")
  set(symbol "${CMAKE_MATCH_1}")
  string(LENGTH "${symbol}" symbol_length)
  if(symbol_length LESS 6)
    message(FATAL_ERROR "wsrelay_add_plugin(${name}): lws would look up the symbol '${symbol}', and "
                        "libwebsockets 4.1 loads no plugin whose symbol is shorter than 6 characters")
  endif()

  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME ${name}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    WSRELAY_PLUGIN_SYMBOL ${symbol})
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED WSRELAY_PLUGIN_BUILD_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${WSRELAY_PLUGIN_BUILD_DIR})
  endif()
  target_link_libraries(${name} PRIVATE wsrelay::plugin_api ${ARG_LIBRARIES})
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${WSRELAY_PLUGIN_INSTALL_DIR})
  endif()
  set_property(GLOBAL APPEND PROPERTY WSRELAY_PLUGIN_TARGETS ${name})
endfunction()
