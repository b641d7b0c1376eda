# cli_docs.cmake — the `dagnet` command's man page and bash completion, written by the command
# itself from its option tables (src/cli/commands.c), so that neither can drift from --help.
# Run after dagnet_cli links (CMakeLists.txt):
#   cmake -DDAGNET=path/to/dagnet -DOUT_DIR=dir -P cmake/cli_docs.cmake
foreach(what man completion)
  if(what STREQUAL man)
    set(out ${OUT_DIR}/dagnet.1)
  else()
    set(out ${OUT_DIR}/dagnet.bash-completion)
  endif()
  execute_process(COMMAND ${DAGNET} --${what} OUTPUT_FILE ${out}.tmp RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${out}.tmp)
    message(FATAL_ERROR "${DAGNET} --${what} failed: ${rc}")
  endif()
  file(RENAME ${out}.tmp ${out})
endforeach()
