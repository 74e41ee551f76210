# jobhost_add_plugin(<name> <sources>...)
# Builds <name>.so (no "lib" prefix) that exports only jobhost_plugin_v1.
function(jobhost_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE jobhost::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Keep libstdc++'s inline statics local too, so only the entry symbol is exported.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  endif()
  if(DEFINED JOBHOST_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${JOBHOST_PLUGIN_OUTPUT_DIR})
  endif()
endfunction()
