#include "core/h5.h"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "core/checks.h"

namespace zerorl {

namespace {

// HDF5 prints its error stack to stderr by default; our messages replace it.
struct SilenceHdf5 {
  SilenceHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

struct Handle {  // closes an HDF5 id with the matching function
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  operator hid_t() const { return id; }
};

hid_t h5_type(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return H5T_NATIVE_FLOAT;
    case at::kDouble:
      return H5T_NATIVE_DOUBLE;
    case at::kLong:
      return H5T_NATIVE_INT64;
    case at::kInt:
      return H5T_NATIVE_INT32;
    case at::kShort:
      return H5T_NATIVE_INT16;
    case at::kByte:
      return H5T_NATIVE_UINT8;
    case at::kChar:
      return H5T_NATIVE_INT8;
    default:
      return -1;
  }
}

// The parent group path of "a/b/c" is "a/b"; datasets may contain dots.
hid_t lcpl_intermediate() {
  hid_t p = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(p, 1);
  return p;
}

std::string obj_path(const std::string& obj) { return obj.empty() ? "/" : obj; }

// Why the HDF5 call that just failed failed, read from its error stack
// before any other HDF5 call clears it: the OS's message when a system call
// failed (the sec2 driver records "errno = 28, error message = 'No space
// left on device'"), else the innermost description, else errno.
std::string h5_reason() {
  const int saved_errno = errno;
  std::vector<std::string> descs;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        if (e->desc) static_cast<std::vector<std::string>*>(data)->push_back(e->desc);
        return 0;
      },
      &descs);
  const std::string key = "error message = '";
  for (const auto& d : descs) {
    size_t at = d.find(key);
    if (at == std::string::npos) continue;
    size_t from = at + key.size(), to = d.find('\'', from);
    return d.substr(from, to == std::string::npos ? std::string::npos : to - from);
  }
  if (!descs.empty()) return descs.back();
  return saved_errno ? std::strerror(saved_errno) : "no reason given";
}

}  // namespace

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
  static SilenceHdf5 silence;
  hid_t id = -1;
  if (mode == Mode::kCreate) {
    errno = 0;
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ZR_CHECK(id >= 0, "cannot create HDF5 file '", path, "': ", h5_reason());
  } else {
    ZR_CHECK(H5Fis_hdf5(path.c_str()) > 0, "'", path,
             "' is missing, truncated or not an HDF5 file");
    id = H5Fopen(path.c_str(), mode == Mode::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
    ZR_CHECK(id >= 0, "cannot open HDF5 file '", path, "' (truncated or corrupt?)");
  }
  id_ = id;
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(static_cast<hid_t>(id_));
}

void H5File::flush() {
  ZR_CHECK(id_ >= 0, "'", path_, "' is closed");
  errno = 0;
  ZR_CHECK(H5Fflush(static_cast<hid_t>(id_), H5F_SCOPE_GLOBAL) >= 0, "cannot write '", path_,
           "': ", h5_reason());
}

void H5File::close() {
  if (id_ < 0) return;
  hid_t id = static_cast<hid_t>(id_);
  id_ = -1;
  errno = 0;
  ZR_CHECK(H5Fclose(id) >= 0, "cannot finish writing '", path_, "': ", h5_reason());
}

std::vector<H5File::Attr> H5File::attributes() const {
  ZR_CHECK(id_ >= 0, "'", path_, "' is closed");
  hid_t f = static_cast<hid_t>(id_);
  std::vector<std::string> objects = {"/"};
  H5Lvisit(
      f, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* n, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(n);
        return 0;
      },
      &objects);
  struct Ctx {
    const std::string* object;
    std::vector<Attr>* out;
    std::string error;
  };
  std::vector<Attr> out;
  for (const auto& obj : objects) {
    Handle o(H5Oopen(f, obj.c_str(), H5P_DEFAULT), H5Oclose);
    ZR_CHECK(o.id >= 0, path_, ": cannot open object '", obj, "'");
    const std::string name = obj == "/" ? "" : obj;
    Ctx ctx{&name, &out, ""};
    herr_t rc = H5Aiterate2(
        o, H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t loc, const char* key, const H5A_info_t*, void* data) -> herr_t {
          auto* c = static_cast<Ctx*>(data);
          Handle a(H5Aopen(loc, key, H5P_DEFAULT), H5Aclose);
          Handle ty(H5Aget_type(a), H5Tclose);
          Handle space(H5Aget_space(a), H5Sclose);
          if (a.id < 0 || ty.id < 0 || space.id < 0 || H5Tis_variable_str(ty) > 0) {
            c->error = std::string("attribute '") + key + "' cannot be read as fixed-size data";
            return -1;
          }
          hssize_t n = H5Sget_simple_extent_npoints(space);
          size_t size = H5Tget_size(ty);
          std::string bytes(static_cast<size_t>(std::max<hssize_t>(n, 0)) * size, '\0');
          if (!bytes.empty() && H5Aread(a, ty, bytes.data()) < 0) {
            c->error = std::string("cannot read attribute '") + key + "'";
            return -1;
          }
          c->out->push_back({*c->object, key,
                             std::to_string(static_cast<int>(H5Tget_class(ty))) + ":" +
                                 std::to_string(size) + "x" + std::to_string(n),
                             std::move(bytes)});
          return 0;
        },
        &ctx);
    ZR_CHECK(rc >= 0, path_, ": on '", obj,
             "': ", ctx.error.empty() ? "cannot list attributes" : ctx.error);
  }
  std::sort(out.begin(), out.end(), [](const Attr& a, const Attr& b) {
    return std::tie(a.object, a.name) < std::tie(b.object, b.name);
  });
  return out;
}

bool H5File::exists(const std::string& name) const {
  // Check every prefix: H5Lexists fails on a missing intermediate group.
  hid_t f = static_cast<hid_t>(id_);
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    std::string part = name.substr(0, pos);
    if (!part.empty() && part != "/" && H5Lexists(f, part.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

void H5File::write_tensor(const std::string& name, const at::Tensor& t_in) {
  at::Tensor t = t_in.detach().to(at::kCPU).contiguous();
  std::string tag;
  if (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf) {
    tag = t.scalar_type() == at::kBFloat16 ? "bfloat16" : "float16";
    t = t.view(at::kShort);
  } else if (t.scalar_type() == at::kBool) {
    tag = "bool";
    t = t.to(at::kByte);
  }
  hid_t ty = h5_type(t.scalar_type());
  ZR_CHECK(ty >= 0, path_, ": cannot store tensor '", name, "' of dtype ",
           at::toString(t_in.scalar_type()));
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(t.dim() == 0 ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle lcpl(lcpl_intermediate(), H5Pclose);
  if (exists(name)) H5Ldelete(static_cast<hid_t>(id_), name.c_str(), H5P_DEFAULT);
  Handle ds(
      H5Dcreate2(static_cast<hid_t>(id_), name.c_str(), ty, space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  ZR_CHECK(ds.id >= 0, path_, ": cannot create dataset '", name, "': ", h5_reason());
  errno = 0;
  if (t.numel() > 0)
    ZR_CHECK(H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0, path_,
             ": cannot write dataset '", name, "': ", h5_reason());
  if (!tag.empty()) write_attr(name, "zerorl_dtype", tag);
}

at::Tensor H5File::read_tensor(const std::string& name) const {
  ZR_CHECK(exists(name), path_, ": no dataset '", name, "'");
  Handle ds(H5Dopen2(static_cast<hid_t>(id_), name.c_str(), H5P_DEFAULT), H5Dclose);
  ZR_CHECK(ds.id >= 0, path_, ": cannot open dataset '", name, "'");
  Handle space(H5Dget_space(ds), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space);
  ZR_CHECK(rank >= 0, path_, ": dataset '", name, "' has a bad dataspace");
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  Handle ftype(H5Dget_type(ds), H5Tclose);
  H5T_class_t cls = H5Tget_class(ftype);
  size_t size = H5Tget_size(ftype);
  at::ScalarType st;
  if (cls == H5T_FLOAT && size == 4)
    st = at::kFloat;
  else if (cls == H5T_FLOAT && size == 8)
    st = at::kDouble;
  else if (cls == H5T_INTEGER && size == 8)
    st = at::kLong;
  else if (cls == H5T_INTEGER && size == 4)
    st = at::kInt;
  else if (cls == H5T_INTEGER && size == 2)
    st = at::kShort;
  else if (cls == H5T_INTEGER && size == 1)
    st = H5Tget_sign(ftype) == H5T_SGN_NONE ? at::kByte : at::kChar;
  else
    ZR_THROW(path_, ": dataset '", name, "' has an unsupported element type");
  std::vector<int64_t> shape(dims.begin(), dims.end());
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(st));
  if (out.numel() > 0)
    ZR_CHECK(H5Dread(ds, h5_type(st), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) >= 0, path_,
             ": cannot read dataset '", name, "' (truncated or corrupt file?)");
  if (has_attr(name, "zerorl_dtype")) {
    std::string tag = read_attr_string(name, "zerorl_dtype");
    if (tag == "bfloat16")
      out = out.view(at::kBFloat16);
    else if (tag == "float16")
      out = out.view(at::kHalf);
    else if (tag == "bool")
      out = out.to(at::kBool);
  }
  return out;
}

std::vector<std::string> H5File::list(const std::string& group) const {
  std::vector<std::string> names;
  Handle g(H5Gopen2(static_cast<hid_t>(id_), obj_path(group).c_str(), H5P_DEFAULT), H5Gclose);
  ZR_CHECK(g.id >= 0, path_, ": no group '", group, "'");
  H5Literate(
      g, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* n, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(n);
        return 0;
      },
      &names);
  std::sort(names.begin(), names.end());
  return names;
}

bool H5File::has_attr(const std::string& obj, const std::string& key) const {
  if (!obj.empty() && !exists(obj)) return false;
  return H5Aexists_by_name(static_cast<hid_t>(id_), obj_path(obj).c_str(), key.c_str(),
                           H5P_DEFAULT) > 0;
}

namespace {
void write_attr_raw(hid_t file, const std::string& path, const std::string& obj,
                    const std::string& key, hid_t type, const void* data) {
  if (H5Aexists_by_name(file, obj_path(obj).c_str(), key.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, obj_path(obj).c_str(), key.c_str(), H5P_DEFAULT);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate_by_name(file, obj_path(obj).c_str(), key.c_str(), type, space, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  ZR_CHECK(a.id >= 0, path, ": cannot create attribute '", key, "' on '", obj_path(obj), "'");
  ZR_CHECK(H5Awrite(a, type, data) >= 0, path, ": cannot write attribute '", key, "'");
}
}  // namespace

void H5File::write_attr(const std::string& obj, const std::string& key, const std::string& value) {
  Handle ty(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(ty, std::max<size_t>(1, value.size()));
  H5Tset_strpad(ty, H5T_STR_NULLPAD);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  write_attr_raw(static_cast<hid_t>(id_), path_, obj, key, ty, buf.data());
}

void H5File::write_attr(const std::string& obj, const std::string& key, int64_t value) {
  write_attr_raw(static_cast<hid_t>(id_), path_, obj, key, H5T_NATIVE_INT64, &value);
}

void H5File::write_attr(const std::string& obj, const std::string& key, double value) {
  write_attr_raw(static_cast<hid_t>(id_), path_, obj, key, H5T_NATIVE_DOUBLE, &value);
}

std::string H5File::read_attr_string(const std::string& obj, const std::string& key) const {
  ZR_CHECK(has_attr(obj, key), path_, ": no attribute '", key, "' on '", obj_path(obj), "'");
  Handle a(H5Aopen_by_name(static_cast<hid_t>(id_), obj_path(obj).c_str(), key.c_str(), H5P_DEFAULT,
                           H5P_DEFAULT),
           H5Aclose);
  Handle ty(H5Aget_type(a), H5Tclose);
  ZR_CHECK(H5Tget_class(ty) == H5T_STRING, path_, ": attribute '", key, "' is not a string");
  ZR_CHECK(!H5Tis_variable_str(ty), path_, ": attribute '", key, "' is a variable-length string");
  size_t n = H5Tget_size(ty);
  std::string out(n, '\0');
  ZR_CHECK(H5Aread(a, ty, out.data()) >= 0, path_, ": cannot read attribute '", key, "'");
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

int64_t H5File::read_attr_int(const std::string& obj, const std::string& key) const {
  ZR_CHECK(has_attr(obj, key), path_, ": no attribute '", key, "' on '", obj_path(obj), "'");
  Handle a(H5Aopen_by_name(static_cast<hid_t>(id_), obj_path(obj).c_str(), key.c_str(), H5P_DEFAULT,
                           H5P_DEFAULT),
           H5Aclose);
  int64_t v = 0;
  ZR_CHECK(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, path_, ": cannot read attribute '", key, "'");
  return v;
}

double H5File::read_attr_double(const std::string& obj, const std::string& key) const {
  ZR_CHECK(has_attr(obj, key), path_, ": no attribute '", key, "' on '", obj_path(obj), "'");
  Handle a(H5Aopen_by_name(static_cast<hid_t>(id_), obj_path(obj).c_str(), key.c_str(), H5P_DEFAULT,
                           H5P_DEFAULT),
           H5Aclose);
  double v = 0;
  ZR_CHECK(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0, path_, ": cannot read attribute '", key, "'");
  return v;
}

void H5File::write_bytes(const std::string& name, const std::string& bytes) {
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  write_tensor(name, t);
}

std::string H5File::read_bytes(const std::string& name) const {
  at::Tensor t = read_tensor(name);
  ZR_CHECK(t.scalar_type() == at::kByte && t.dim() == 1, path_, ": '", name,
           "' is not a byte blob");
  return std::string(static_cast<const char*>(t.data_ptr()), t.numel());
}

}  // namespace zerorl
