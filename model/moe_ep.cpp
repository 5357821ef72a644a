#include "model/moe_ep.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>

#include "core/error.h"
#include "kernels/batch_invariant.h"
#include "kernels/moe/moe.h"

namespace zerorl::model {

namespace {

// See ep_exchange_seconds(); one thread per process runs the model.
double g_exchange_seconds = 0;

at::Tensor timed_alltoallv(Comm& comm, const at::Tensor& rows, const std::vector<int64_t>& send,
                           std::vector<int64_t>* recv) {
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor out = comm.alltoallv(rows, send, recv);
  g_exchange_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

// The token rows' exchange posted before the shared expert runs; ExchangeFn
// waits for it (see EpMoeBlock::forward).
struct PostedExchange {
  std::unique_ptr<CommWork> work;
  std::vector<int64_t> recv;
};

PostedExchange post_exchange(Comm& comm, const at::Tensor& rows, const std::vector<int64_t>& send) {
  const auto t0 = std::chrono::steady_clock::now();
  PostedExchange p;
  p.work = comm.alltoallv_async(rows.detach(), send, &p.recv);
  g_exchange_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

at::Tensor timed_wait(CommWork& work) {
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor out = work.wait();
  g_exchange_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The Comm outlives the graph (the grid owns it); a capsule carries the pointer.
struct CommRef : torch::CustomClassHolder {
  explicit CommRef(Comm* c) : comm(c) {}
  Comm* comm;
};

// `posted`: the exchange of `rows` was already posted (post_exchange), and
// forward only waits for it; null: forward runs it.
struct ExchangeFn : public torch::autograd::Function<ExchangeFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& rows, Comm* comm,
                            std::vector<int64_t> send_counts, std::vector<int64_t>* recv_counts,
                            PostedExchange* posted) {
    std::vector<int64_t> recv;
    at::Tensor out;
    if (posted) {
      out = timed_wait(*posted->work);
      recv = posted->recv;
    } else {
      out = timed_alltoallv(*comm, rows, send_counts, &recv);
    }
    ctx->saved_data["comm"] = c10::IValue::make_capsule(c10::make_intrusive<CommRef>(comm));
    ctx->saved_data["send"] = send_counts;
    ctx->saved_data["recv"] = recv;
    ctx->saved_data["shape"] = rows.sizes().vec();
    ctx->saved_data["dtype"] = rows.scalar_type();
    ctx->saved_data["device"] = rows.device();
    if (recv_counts) *recv_counts = std::move(recv);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    Comm* comm =
        c10::static_intrusive_pointer_cast<CommRef>(ctx->saved_data["comm"].toCapsule())->comm;
    std::vector<int64_t> recv = ctx->saved_data["recv"].toIntVector();
    std::vector<int64_t> send = ctx->saved_data["send"].toIntVector();
    std::vector<int64_t> back;
    int64_t rows = 0;
    for (int64_t c : recv) rows += c;
    at::Tensor grad = grad_out[0];
    if (!grad.defined()) {  // output unused here: the peers still expect this rank's rows
      std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
      shape[0] = rows;
      grad = at::zeros(shape, at::TensorOptions()
                                  .dtype(ctx->saved_data["dtype"].toScalarType())
                                  .device(ctx->saved_data["device"].toDevice()));
    }
    at::Tensor g = timed_alltoallv(*comm, grad.contiguous(), recv, &back);
    ZR_CHECK(back == send,
             "EP exchange backward: the gradient rows that came back do not match "
             "the rows sent forward");
    return {g, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor alltoallv_autograd(Comm& comm, const at::Tensor& rows,
                              const std::vector<int64_t>& send_counts,
                              std::vector<int64_t>* recv_counts) {
  return ExchangeFn::apply(rows, &comm, send_counts, recv_counts,
                           static_cast<PostedExchange*>(nullptr));
}

EpMoeBlock::EpMoeBlock(const ModelConfig& cfg, const ProcessGrid& grid)
    : MoeLayer(cfg.moe), ep_comm_(&grid.ep_comm()), ep_(grid.ep()) {
  const int64_t D = cfg.hidden_size, E = cfg_.num_experts;
  ZR_CHECK(E > 0, "EpMoeBlock needs routed experts (moe.num_experts > 0)");
  el_ = grid.experts_per_rank(E);
  e0_ = grid.first_expert(E);
  gate = register_module("gate", std::make_shared<Router>(D, E, cfg_.score_bias));
  experts =
      register_module("experts", std::make_shared<RoutedExperts>(el_, D, cfg_.expert_intermediate));
  if (cfg_.shared_intermediate > 0) {
    const char* name = cfg_.shared_expert_gate ? "shared_expert" : "shared_experts";
    shared = register_module(name, std::make_shared<Mlp>(D, cfg_.shared_intermediate));
    if (cfg_.shared_expert_gate)
      shared_gate = register_module("shared_expert_gate", std::make_shared<Linear>(D, 1, false));
  }
}

at::Tensor EpMoeBlock::forward(const at::Tensor& x, MoeCall& call) {
  ZR_CHECK(!(call.want_aux && cfg_.seq_aux_loss_alpha > 0),
           "EpMoeBlock: the sequence-wise balance loss (moe.seq_aux_loss_alpha) is not supported "
           "under expert parallelism yet (issue 14)");
  const int64_t N = x.size(0), D = x.size(1), K = cfg_.top_k;
  at::ScalarType acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // Zero rows route to nothing (a rank joining its peers' exchanges).
  kernels::RouterOutput r = route_tokens(*gate, cfg_, x, call);

  // Permute the (token, slot) pairs p = t*K + k by expert; experts are owned
  // in contiguous ranges, so this also groups them by destination rank.
  at::Tensor idx_P = r.topk_idx_TK.detach().reshape({-1});
  at::Tensor order_P = at::argsort(idx_P, /*stable=*/true);
  at::Tensor expert_P = idx_P.index_select(0, order_P);
  at::Tensor dest_P = at::floor_divide(expert_P, el_);
  at::Tensor counts = at::bincount(dest_P, {}, ep_).to(at::kLong).contiguous();
  std::vector<int64_t> send(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + ep_);
  at::Tensor x_send = x.index_select(0, at::floor_divide(order_P, K));

  // The shared expert: replicated, on this rank's own tokens.
  auto shared_out = [&]() -> at::Tensor {
    if (!shared) return at::Tensor();
    at::Tensor s = shared->forward(x);
    if (shared_gate) s = kernels::invariant_sigmoid(shared_gate->forward(x)) * s;
    return s;
  };
  // Tokens (differentiable) and their local expert ids travel the same way:
  // the ids first, then the rows, in flight while the shared expert runs.
  std::vector<int64_t> recv;
  at::Tensor local_R1 =
      timed_alltoallv(*ep_comm_, (expert_P - dest_P * el_).unsqueeze(1), send, &recv);
  at::Tensor s_ND, x_recv;
  if (overlap_shared_ && shared) {
    PostedExchange posted = post_exchange(*ep_comm_, x_send, send);
    s_ND = shared_out();
    x_recv = ExchangeFn::apply(x_send, ep_comm_, send, static_cast<std::vector<int64_t>*>(nullptr),
                               &posted);
  } else {
    x_recv = alltoallv_autograd(*ep_comm_, x_send, send, nullptr);
  }
  auto cast = [&](const at::Tensor& t) {
    return t.scalar_type() == x.scalar_type() ? t : t.to(x.scalar_type());
  };
  at::Tensor ones_R1 = at::ones({x_recv.size(0), 1}, x.options().dtype(at::kFloat));
  kernels::MoeResult m = kernels::moe_experts(x_recv, local_R1, ones_R1, cast(experts->gate_proj),
                                              cast(experts->up_proj), cast(experts->down_proj));
  // A rank that receives no rows gets a constant from the kernel; tie it to
  // x_recv so that its backward still joins both reverse exchanges.
  at::Tensor y_recv = x_recv.size(0) == 0 ? x_recv * 0 : m.y_TD;
  at::Tensor y_sorted = alltoallv_autograd(*ep_comm_, y_recv, recv, nullptr);

  // Un-permute and combine with the router weights on the token's own rank.
  at::Tensor y_P = y_sorted.index_select(0, at::argsort(order_P));
  at::Tensor y = (y_P.view({N, K, D}).to(acc) * r.topk_weight_TK.to(acc).unsqueeze(-1)).sum(1);
  y = y.to(x.scalar_type());
  if (shared) {
    if (!s_ND.defined()) s_ND = shared_out();
    y = y + s_ND;
  }
  if (call.want_counts) {
    at::Tensor sel = r.topk_idx_TK.detach();
    if (call.valid_N.defined()) sel = sel.index({call.valid_N});
    call.counts_E = at::bincount(sel.reshape({-1}), {}, cfg_.num_experts).to(at::kLong);
  }
  return y;
}

std::shared_ptr<EpMoeBlock> shard_moe_block(const MoeLayer& local, const ModelConfig& cfg,
                                            const ProcessGrid& grid) {
  auto ep = std::make_shared<EpMoeBlock>(cfg, grid);
  at::NoGradGuard ng;
  auto src = local.named_parameters(true);
  for (auto& kv : ep->named_parameters(true)) {
    const at::Tensor* from = src.find(kv.key());
    ZR_CHECK(from, "shard_moe_block: the local layer has no parameter ", kv.key());
    at::Tensor t = kv.value();
    if (kv.key().rfind("experts.", 0) == 0)
      t.copy_(from->narrow(0, ep->first_expert(), ep->local_experts()));
    else
      t.copy_(*from);
  }
  auto src_buf = local.named_buffers(true);
  for (auto& kv : ep->named_buffers(true)) {
    const at::Tensor* from = src_buf.find(kv.key());
    ZR_CHECK(from, "shard_moe_block: the local layer has no buffer ", kv.key());
    kv.value().copy_(*from);
  }
  return ep;
}

double ep_exchange_seconds() { return g_exchange_seconds; }

void apply_expert_parallel(CausalLM& model, const ProcessGrid& grid, bool overlap_shared_expert) {
  ZR_CHECK(!model.expert_grid(), "apply_expert_parallel: the model is already sharded");
  const ModelConfig& cfg = model.config();
  if (!model.moe_layers().empty())
    grid.experts_per_rank(cfg.moe.num_experts);  // divides, or throws
  if (grid.ep() > 1)
    for (size_t m = 0; m < model.moe_layers().size(); ++m) {
      auto block = shard_moe_block(model.moe_layer(m), cfg, grid);
      block->set_overlap_shared_expert(overlap_shared_expert);
      model.replace_moe_layer(m, block);
    }
  model.set_expert_grid(&grid);
}

bool is_sharded_expert(const std::string& name) {
  return name.find(".mlp.experts.") != std::string::npos;
}

}  // namespace zerorl::model
