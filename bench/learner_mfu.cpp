// The learner at a real shape on one device (issue 13's GPU figures): a
// Hugging Face config's shapes (default recipes/shapes/moonlight-16b-a3b.json;
// or a zerorl YAML with a model: section, e.g. model/tiny.yaml) cut to
// --layers decoder layers, random weights in --dtype (bf16: fp32
// masters and moments in the Optimizer), B x T tokens per step through
// CausalLM::logprobs (chunked chosen-token log-probs, SDPA attention,
// activation checkpointing unless --checkpointing 0), backward, and
// policy_step (gradient sync over the Comm, clipping, AdamW, balancing bias).
// Under mpirun on a GPU the Comm is nccl ("auto"), otherwise mpi or single;
// every rank runs the same B x T (data parallel); --overlap 0 turns
// train.overlap_grad_sync off and --bucket-mb sets optimizer.bucket_mb
// (docs/PERFORMANCE.md compares the two).
//
// Prints, medians over --steps after one warm-up step:
//   * forward + backward and optimizer-step milliseconds, learner tokens/s;
//   * MFU = 6 x active parameters x tokens / (forward + backward seconds) /
//     peak, the formula (active: ParamReport::active_per_token, the
//     embedding table included; attention's T^2 FLOPs not counted), with
//     peak = --peak-tflops (0: 989 dense bf16 TFLOP/s when the device name
//     says H100 or H200; no MFU on the CPU);
//   * the memory plan (trainer/memory_plan.h) for the same input (no
//     reference, no KV cache) against the measured peak: the CUDA caching
//     allocator's peak allocated bytes, or on the CPU the peak live bytes of
//     a tracking allocator (tests/kernels/tracking_allocator.h) since before
//     the model was built; "plan/peak" and whether it is within 15%.
//
//   mpirun -np 1 build/bench_learner_mfu --device cuda --layers 4 --B 2 --T 4096
//   build/bench_learner_mfu --device cpu --config /tmp/small.json --layers 2 --B 2 --T 64
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#ifdef ZERORL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "model/model.h"
#include "tests/kernels/tracking_allocator.h"
#include "trainer/grad_sync.h"
#include "trainer/memory_plan.h"
#include "trainer/optimizer.h"
#include "trainer/policy_file.h"
#include "trainer/policy_step.h"
#include "bench/flags.h"

using namespace zerorl;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"config", "recipes/shapes/moonlight-16b-a3b.json"},
                                       {"layers", "4"},
                                       {"device", "cuda"},
                                       {"dtype", "bf16"},
                                       {"B", "2"},
                                       {"T", "4096"},
                                       {"steps", "4"},
                                       {"checkpointing", "1"},
                                       {"zero", "1"},
                                       {"overlap", "1"},
                                       {"bucket-mb", "25"},
                                       {"peak-tflops", "0"}};
  if (!zerorl::bench::read_flags(argc, argv, a)) return 2;
  try {
    mpi_init_if_launched(&argc, &argv);
    const bool cuda = a["device"] == "cuda";
    ZR_CHECK(cuda || a["device"] == "cpu", "--device cuda|cpu");
    ZR_CHECK(a["dtype"] == "bf16" || a["dtype"] == "fp32", "--dtype bf16|fp32");
    test::TrackingAllocator* tracker = cuda ? nullptr : &test::installed_tracker();
    if (tracker) tracker->reset_peak();
    const at::Device dev = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
    const at::ScalarType dt = a["dtype"] == "bf16" ? at::kBFloat16 : at::kFloat;
    const int64_t B = std::stoll(a["B"]), T = std::stoll(a["T"]);
    const int steps = std::stoi(a["steps"]);
    const bool ckpt = a["checkpointing"] != "0";

    const std::string& path = a["config"];
    model::ModelConfig cfg =
        path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0
            ? model::ModelConfig::from_hf_json_file(path)
            : model::ModelConfig::from(Recipe::from_file(path).section("model"));
    cfg.num_layers = std::stoll(a["layers"]);
    cfg.max_position = std::max<int64_t>(cfg.max_position, T + 1);
    auto comm = make_comm("auto");
    // Uninitialised on the host, then drawn on the device: a host-side
    // normal() of billions of fp32 values would take minutes.
    auto m = std::make_shared<model::CausalLM>(cfg, /*random_init=*/false);
    // Cast before the move, so that the device never holds the fp32 copy
    // (the measured peak is the training's, as the plan counts it).
    cast_parameters(*m, dt, "");  // as policy.dtype: buffers (balancing bias) stay fp32
    m->to(dev);
    {
      at::NoGradGuard ng;
      at::manual_seed(0);
      for (auto& p : m->named_parameters(true)) {
        at::Tensor w = p.value();
        const std::string& n = p.key();
        if (w.dim() >= 2)
          w.normal_(0, cfg.init_std);
        else if (n.find("norm") != std::string::npos)
          w.fill_(1);
        else
          w.zero_();
      }
    }
    std::vector<NamedParam> params;
    for (auto& p : m->named_parameters(true))
      params.push_back({p.key(), p.value(), p.value().dim() >= 2});
    OptimizerConfig oc;
    oc.lr = 3e-6;
    oc.zero = std::stoi(a["zero"]);
    oc.overlap_grad_sync = a["overlap"] != "0";
    oc.bucket_mb = std::stod(a["bucket-mb"]);
    Optimizer opt(params, oc, *comm);

    const auto ids = at::TensorOptions(dev).dtype(at::kLong);
    const at::Tensor tokens = at::randint(0, cfg.vocab_size, {B, T}, ids);
    const at::Tensor targets = at::randint(0, cfg.vocab_size, {B, T}, ids);
    auto sync = [&] { zerorl::bench::sync_device(cuda); };
    std::vector<double> fb_s, opt_s, step_s;
    for (int s = 0; s <= steps; ++s) {
      sync();
      const double t0 = now();
      model::ForwardOptions fo;
      fo.record_expert_load = true;
      fo.activation_checkpointing = ckpt;
      model::LogprobOutput o = m->logprobs(tokens, targets, {}, fo);
      at::Tensor loss = -o.logp_BT.to(at::kFloat).mean();
      if (o.aux_loss.defined()) loss = loss + o.aux_loss;
      opt.overlap_next_backward();
      loss.backward();
      sync();
      const double t1 = now();
      const StepReport r =
          policy_step(opt, *m, *comm, std::isfinite(loss.item<double>())).optimizer;
      sync();
      const double t2 = now();
      ZR_CHECK(r.applied, "step ", s, " was skipped (grad norm ", r.grad_norm, ")");
      if (s > 0) {  // step 0 warms up
        fb_s.push_back(t1 - t0);
        opt_s.push_back(t2 - t1);
        step_s.push_back(t2 - t0);
      }
    }
    if (comm->rank() != 0) return 0;  // every rank ran the same; rank 0 reports
    const double fb = median(fb_s), st = median(opt_s);
    const model::ParamReport pr = m->param_report();
    std::printf("model: %s, %lld layers, %s on %s, %s comm over %d rank(s)\n%s\n",
                cfg.summary().c_str(), static_cast<long long>(cfg.num_layers), a["dtype"].c_str(),
                dev.str().c_str(), comm->backend().c_str(), comm->size(), pr.to_string().c_str());
    std::printf(
        "B=%lld T=%lld, checkpointing %s, overlap %s, %lld buckets: forward+backward %.1f ms, "
        "optimizer step %.1f ms, whole step %.1f ms (medians of %d); learner %.0f tokens/s "
        "(forward+backward %.0f)\n",
        static_cast<long long>(B), static_cast<long long>(T), ckpt ? "on" : "off",
        oc.overlap_grad_sync ? "on" : "off", static_cast<long long>(opt.grad_sync().num_buckets()),
        fb * 1e3, st * 1e3, median(step_s) * 1e3, steps, B * T / median(step_s), B * T / fb);
    double peak_tflops = std::stod(a["peak-tflops"]);
    std::string name = "cpu";
#ifdef ZERORL_WITH_CUDA
    if (cuda) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) name = prop.name;
      if (peak_tflops <= 0 &&
          (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos))
        peak_tflops = 989;  // dense bf16, SXM
    }
#endif
    const double flops = 6.0 * static_cast<double>(pr.active_per_token) * B * T;
    if (peak_tflops > 0)
      std::printf("MFU %.1f%% (6 x %.3g active params x %lld tokens / %.3f s / %.0f TFLOP/s, %s)\n",
                  100 * flops / fb / (peak_tflops * 1e12), static_cast<double>(pr.active_per_token),
                  static_cast<long long>(B * T), fb, peak_tflops, name.c_str());
    else
      std::printf("MFU: no peak known for %s (give --peak-tflops)\n", name.c_str());

    MemoryPlanInput in;
    in.model = cfg;
    in.world_size = comm->size();
    in.param_bytes = dt == at::kBFloat16 ? 2 : 4;
    in.zero = oc.zero;
    in.reference = false;
    in.activation_checkpointing = ckpt;
    in.micro_batch = B;
    in.seq_len = T;
    const MemoryPlan plan = plan_memory(in);
    int64_t peak = 0;
    if (tracker) peak = tracker->peak_above_reset();
#ifdef ZERORL_WITH_CUDA
    if (cuda) peak = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak;
#endif
    const double ratio = static_cast<double>(plan.total_bytes) / static_cast<double>(peak);
    std::printf("%s\nplan %.2f GiB, measured peak %.2f GiB (%s): plan/peak %.3f, %s 15%%\n",
                plan.table().c_str(), plan.total_bytes / 1073741824.0, peak / 1073741824.0,
                cuda ? "CUDA allocator" : "tracking CPU allocator", ratio,
                std::abs(ratio - 1) <= 0.15 ? "within" : "NOT within");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    mpi_abort_all(1);
    return 1;
  }
}
