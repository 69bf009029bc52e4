# pruvan-call: makes Pruvan's calls to a web service (validate with a
# pushkey, getWorkOrders, status, uploadPictures with a file part) with an
# integration's credentials: the caller half of the simulator, for the
# demo, the relay's integration tests and checking a deployment.
add_executable(pruvan-call tools/pruvan-call.c)
target_link_libraries(pruvan-call PRIVATE PkgConfig::CURL PkgConfig::JANSSON
                                          PkgConfig::CRYPTO)
set_target_properties(pruvan-call PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
