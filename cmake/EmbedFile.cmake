# embed_file(INPUT OUTPUT SYMBOL): generates OUTPUT defining
#   extern "C++" const char SYMBOL[]; and const unsigned long SYMBOL_size;
# regenerated whenever INPUT changes.
function(embed_file input output symbol)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DSYMBOL=${symbol}
            -P ${CMAKE_SOURCE_DIR}/cmake/EmbedFileScript.cmake
    DEPENDS ${input} ${CMAKE_SOURCE_DIR}/cmake/EmbedFileScript.cmake
    COMMENT "Embedding ${input}")
endfunction()
