# cmake -DJOBHOST_BUILD_DIR=... -DEXTERNAL_SOURCE_DIR=... -DWORK_DIR=... -DSCAN_TOOL=...
#       -DGENERATOR=... [-DMAKE_PROGRAM=...] [-DCXX_COMPILER=...] -P check_external_plugin.cmake
# Installs the SDK, builds an external plugin and its unit test (the test kit,
# jobhost::testing) against the installed package, runs the test, and scans
# the plugin with the catalog. Fails (FATAL_ERROR) with the output of the step that broke.
cmake_minimum_required(VERSION 3.25)

foreach(var JOBHOST_BUILD_DIR EXTERNAL_SOURCE_DIR WORK_DIR SCAN_TOOL GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "${var} is not set")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

# 1. Install the SDK exactly as a user would.
run_step("install the SDK" "${CMAKE_COMMAND}" --install "${JOBHOST_BUILD_DIR}" --prefix "${prefix}")
file(GLOB_RECURSE config_files "${prefix}/*/jobhostConfig.cmake")
if(NOT config_files)
  message(FATAL_ERROR "cmake --install put no jobhostConfig.cmake under ${prefix}")
endif()
foreach(header plugin.h plugin.hpp testing.h testing.hpp)
  if(NOT EXISTS "${prefix}/include/jobhost/${header}")
    message(FATAL_ERROR "cmake --install put no jobhost/${header} under ${prefix}/include")
  endif()
endforeach()

# 2. Configure and build the external project against the installed package
#    only (no package registries, nothing from the source or build tree).
set(configure "${CMAKE_COMMAND}" -S "${EXTERNAL_SOURCE_DIR}" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND configure "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
run_step("configure the external plugin" ${configure})
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" jobhost_dir REGEX "^jobhost_DIR:")
string(FIND "${jobhost_dir}" "${prefix}/" at)
if(NOT at GREATER -1)
  message(FATAL_ERROR "find_package(jobhost) did not use the installed package: ${jobhost_dir}")
endif()
run_step("build the external plugin" "${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
set(plugin "${WORK_DIR}/build/greet.so")
if(NOT EXISTS "${plugin}")
  message(FATAL_ERROR "jobhost_add_plugin(greet ...) did not produce ${plugin}")
endif()

# 3. Its unit test, built with jobhost::testing, loads it and passes.
run_step("run the external plugin's unit test" "${WORK_DIR}/build/greet_test" "${plugin}")

# 4. The catalog accepts it: probed in a child, ABI checked, shadow-copied.
set(plugin_dir "${WORK_DIR}/plugins")
file(MAKE_DIRECTORY "${plugin_dir}")
file(CHMOD "${plugin_dir}" DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(COPY "${plugin}" DESTINATION "${plugin_dir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
run_step("scan the external plugin" "${SCAN_TOOL}" "${plugin_dir}" "${WORK_DIR}/state/plugins"
         --expect greet 2.3.4)
message(STATUS "${step_output}")

# 4. The tutorial's last step (docs/tutorial.md): a config names the plugin and
#    `jobhost run-once` runs it isolated and records it.
if(DEFINED JOBHOST_BIN)
  set(config "${WORK_DIR}/jobhost.toml")
  file(WRITE "${config}" "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"state\"\n[http]\nlisten = \"\"\n"
       "[jobs.greet]\nplugin = \"greet\"\nschedule = \"*/10 * * * * *\"\n"
       "params = { who = \"tutorial\" }\n")
  run_step("run the external plugin" "${JOBHOST_BIN}" run-once --config "${config}" greet)
  message(STATUS "${step_output}")
  if(NOT step_output MATCHES " succeeded in [0-9]+m?s: greeted tutorial")
    message(FATAL_ERROR "run-once did not report the plugin's success: ${step_output}")
  endif()
endif()
