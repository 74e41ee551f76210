include(${CMAKE_CURRENT_LIST_DIR}/jobhostTargets.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/jobhostPlugin.cmake)
