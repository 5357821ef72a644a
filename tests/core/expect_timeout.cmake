# The collective watchdog (core/collective_timeout.h): rank 1 SIGSTOPs
# itself and rank 0 waits in an allreduce.  With a 3 s timeout the job
# must end by itself, non-zero, within the timeout + the 10 s the issue
# allows, naming the collective, the step and the rank that did not arrive.
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np 2 ${DRIVER} stop_rank1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
string(TIMESTAMP t1 "%s")
math(EXPR dt "${t1} - ${t0}")
message(STATUS "exit=${rc} after ${dt} s\n${out}${err}")
if(rc EQUAL 0 OR rc STREQUAL "Process terminated due to timeout")
  message(FATAL_ERROR "expected the job to end non-zero by itself, got '${rc}'")
endif()
if(dt GREATER 13)
  message(FATAL_ERROR "the job took ${dt} s to end; the timeout 3 s + 10 s is the bound")
endif()
if(NOT "${out}${err}" MATCHES "collective allreduce #[0-9]+ \\(step 3\\) timed out after 3 s on rank 0: rank\\(s\\) 1 did not arrive")
  message(FATAL_ERROR "the message must name the collective, the step and rank 1")
endif()
