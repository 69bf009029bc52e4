# pruvan-call: makes Pruvan's calls to a web service (validate with a
# pushkey, getWorkOrders, status, uploadPictures with a file part) with an
# integration's credentials: the caller half of the simulator, for the
# demo, the relay's integration tests and checking a deployment.
add_executable(pruvan-call tools/pruvan-call.c)
target_link_libraries(pruvan-call PRIVATE PkgConfig::CURL PkgConfig::JANSSON
                                          PkgConfig::CRYPTO)
set_target_properties(pruvan-call PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# The relay's integration suites call the worker through it (their
# targets come from integration.cmake, read after this file).
function(pb_call_for_relay_suites)
  foreach(t it_test_relay_pushkey it_test_relay_orders)
    if(TARGET ${t})
      add_dependencies(${t} pruvan-call)
      set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
                   "PB_CALL=$<TARGET_FILE:pruvan-call>")
    endif()
  endforeach()
endfunction()
pb_after_modules(pb_call_for_relay_suites)
