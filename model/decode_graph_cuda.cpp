// CUDA graphs of static decode steps (model/static_decode.h).  Compiled with
// ZERORL_CUDA only; built, never run on a GPU yet.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "core/error.h"
#include "model/static_decode.h"

namespace zerorl::model {

namespace {

class CudaDecodeGraph : public DecodeGraph {
 public:
  CudaDecodeGraph(const std::function<void()>& step, std::pair<uint64_t, uint64_t>* pool) {
    const at::cuda::CUDAStream current = at::cuda::getCurrentCUDAStream();
    // Capture on a side stream (the legacy default stream cannot capture),
    // after the current stream's work so far (the inputs' copies).
    const at::cuda::CUDAStream side = at::cuda::getStreamFromPool(false, current.device_index());
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(current);
    inputs_ready.block(side);
    {
      const c10::cuda::CUDAStreamGuard on_side(side);
      // Warm-up: lazy initialisations (cuBLAS handles and workspaces, kernel
      // caches) happen outside the capture.
      step();
      side.synchronize();
      if (pool->first == 0 && pool->second == 0) *pool = at::cuda::graph_pool_handle();
      // Thread-local mode: another thread's unrelated CUDA calls do not
      // invalidate this capture.
      graph_.capture_begin(*pool, cudaStreamCaptureModeThreadLocal);
      try {
        step();
      } catch (...) {
        // Leave the stream out of capture mode before reporting.
        try {
          graph_.capture_end();
        } catch (...) {
        }
        throw;
      }
      graph_.capture_end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(current);
  }
  void replay() override { graph_.replay(); }  // on the current stream

 private:
  at::cuda::CUDAGraph graph_;
};

}  // namespace

std::unique_ptr<DecodeGraph> capture_decode_graph(const std::function<void()>& step,
                                                  std::pair<uint64_t, uint64_t>* pool) {
  try {
    return std::make_unique<CudaDecodeGraph>(step, pool);
  } catch (const std::exception& e) {
    ZR_THROW(
        "decode graphs: capturing a decode step failed (set rollout.cuda_graphs: false to "
        "decode without graphs): ",
        e.what());
  }
}

}  // namespace zerorl::model
