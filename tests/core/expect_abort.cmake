# Rank 1 throws while rank 0 waits in a barrier: the job must end by itself,
# non-zero, within seconds, and say what failed.
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np 2 ${DRIVER} throw_on_rank1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
string(TIMESTAMP t1 "%s")
math(EXPR dt "${t1} - ${t0}")
message(STATUS "exit=${rc} after ${dt} s\n${out}${err}")
if(rc EQUAL 0 OR rc STREQUAL "Process terminated due to timeout")
  message(FATAL_ERROR "expected a non-zero exit, got '${rc}'")
endif()
if(dt GREATER 20)
  message(FATAL_ERROR "the job took ${dt} s to end; a dead rank must end it within seconds")
endif()
if(NOT "${out}${err}" MATCHES "rank 1 fails on purpose")
  message(FATAL_ERROR "the failing rank's message is missing from the output")
endif()
