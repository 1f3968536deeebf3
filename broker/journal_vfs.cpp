#include "journal_vfs.hpp"

#include <sqlite3.h>

#include <cstring>
#include <mutex>
#include <new>
#include <string>

namespace mmgen::broker::journal_vfs {
namespace {

// A bigger transaction goes out in writes of at most this. It must stay under
// 128 KiB: the unix VFS masks a write's length to 17 bits (its pages are at
// most 64 KiB + a frame header), and a longer one fails as SQLITE_FULL.
constexpr std::size_t kMaxHeld = 64u << 10;

sqlite3_vfs* g_base = nullptr;  // the default VFS everything is forwarded to
sqlite3_vfs g_vfs;

// Our file object: SQLite allocates szOsFile bytes and hands them to xOpen;
// the base VFS's own file object follows ours in the same allocation.
struct File {
  sqlite3_file base;  // first: SQLite only sees this part
  sqlite3_file* real = nullptr;
  bool wal = false;
  int poisoned = SQLITE_OK;  // error of a held-back write that failed
  sqlite3_int64 start = 0;   // file offset of held[0]
  std::string held;
};

constexpr std::size_t kFileBytes = (sizeof(File) + 15) / 16 * 16;

File* self(sqlite3_file* p) { return reinterpret_cast<File*>(p); }
const sqlite3_io_methods& real_methods(File* f) { return *f->real->pMethods; }

int write_out(File* f) {
  if (f->poisoned != SQLITE_OK) return f->poisoned;
  if (f->held.empty()) return SQLITE_OK;
  const int rc = real_methods(f).xWrite(f->real, f->held.data(), int(f->held.size()), f->start);
  f->held.clear();
  if (rc != SQLITE_OK) f->poisoned = rc;
  return rc;
}

// ---- sqlite3_io_methods: hold back contiguous WAL writes, forward the rest ----------

int x_close(sqlite3_file* p) {
  File* f = self(p);
  write_out(f);  // a failure here was preceded by a failed flush: the broker has stopped
  const int rc = real_methods(f).xClose(f->real);
  f->~File();
  return rc;
}

int x_read(sqlite3_file* p, void* buf, int n, sqlite3_int64 off) {
  File* f = self(p);
  if (int rc = write_out(f)) return rc;
  return real_methods(f).xRead(f->real, buf, n, off);
}

int x_write(sqlite3_file* p, const void* buf, int n, sqlite3_int64 off) {
  File* f = self(p);
  if (f->poisoned != SQLITE_OK) return f->poisoned;
  if (!f->wal) return real_methods(f).xWrite(f->real, buf, n, off);
  const bool continues = off == f->start + sqlite3_int64(f->held.size());
  if (!f->held.empty() && (!continues || f->held.size() + std::size_t(n) > kMaxHeld)) {
    if (int rc = write_out(f)) return rc;
  }
  if (std::size_t(n) > kMaxHeld) return real_methods(f).xWrite(f->real, buf, n, off);
  if (f->held.empty()) f->start = off;
  f->held.append(static_cast<const char*>(buf), std::size_t(n));
  return SQLITE_OK;
}

int x_truncate(sqlite3_file* p, sqlite3_int64 size) {
  File* f = self(p);
  if (int rc = write_out(f)) return rc;
  return real_methods(f).xTruncate(f->real, size);
}

int x_sync(sqlite3_file* p, int flags) {
  File* f = self(p);
  if (int rc = write_out(f)) return rc;
  return real_methods(f).xSync(f->real, flags);
}

int x_file_size(sqlite3_file* p, sqlite3_int64* size) {
  File* f = self(p);
  if (int rc = write_out(f)) return rc;
  return real_methods(f).xFileSize(f->real, size);
}

int x_lock(sqlite3_file* p, int level) { return real_methods(self(p)).xLock(self(p)->real, level); }
int x_unlock(sqlite3_file* p, int level) { return real_methods(self(p)).xUnlock(self(p)->real, level); }
int x_check_reserved_lock(sqlite3_file* p, int* out) {
  return real_methods(self(p)).xCheckReservedLock(self(p)->real, out);
}
int x_file_control(sqlite3_file* p, int op, void* arg) {
  return real_methods(self(p)).xFileControl(self(p)->real, op, arg);
}
int x_sector_size(sqlite3_file* p) { return real_methods(self(p)).xSectorSize(self(p)->real); }
int x_device_characteristics(sqlite3_file* p) {
  return real_methods(self(p)).xDeviceCharacteristics(self(p)->real);
}

// Version 2 and 3 methods (shared-memory index, memory-mapped reads): the
// journal runs with locking_mode=EXCLUSIVE, so SQLite keeps the WAL index in
// heap memory, but forwarding keeps the VFS correct without that assumption.
int x_shm_map(sqlite3_file* p, int region, int size, int extend, void volatile** out) {
  File* f = self(p);
  if (real_methods(f).iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return real_methods(f).xShmMap(f->real, region, size, extend, out);
}
int x_shm_lock(sqlite3_file* p, int offset, int n, int flags) {
  File* f = self(p);
  if (real_methods(f).iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return real_methods(f).xShmLock(f->real, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* p) {
  File* f = self(p);
  if (real_methods(f).iVersion >= 2) real_methods(f).xShmBarrier(f->real);
}
int x_shm_unmap(sqlite3_file* p, int delete_flag) {
  File* f = self(p);
  if (real_methods(f).iVersion < 2) return SQLITE_OK;
  return real_methods(f).xShmUnmap(f->real, delete_flag);
}
int x_fetch(sqlite3_file* p, sqlite3_int64 off, int n, void** out) {
  File* f = self(p);
  *out = nullptr;
  if (f->wal || real_methods(f).iVersion < 3) return SQLITE_OK;  // "no mapping": SQLite reads instead
  return real_methods(f).xFetch(f->real, off, n, out);
}
int x_unfetch(sqlite3_file* p, sqlite3_int64 off, void* ptr) {
  File* f = self(p);
  if (f->wal || real_methods(f).iVersion < 3) return SQLITE_OK;
  return real_methods(f).xUnfetch(f->real, off, ptr);
}

const sqlite3_io_methods kMethods = {
    3,          x_close,           x_read,    x_write,       x_truncate,   x_sync,
    x_file_size, x_lock,           x_unlock,  x_check_reserved_lock, x_file_control,
    x_sector_size, x_device_characteristics, x_shm_map, x_shm_lock, x_shm_barrier,
    x_shm_unmap, x_fetch, x_unfetch};

// ---- sqlite3_vfs ---------------------------------------------------------------------

int x_open(sqlite3_vfs*, const char* name, sqlite3_file* p, int flags, int* out_flags) {
  File* f = new (p) File();
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(p) + kFileBytes);
  std::memset(f->real, 0, std::size_t(g_base->szOsFile));
  const int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    // The base VFS may have set its methods before failing; then it must be closed.
    if (f->real->pMethods) f->real->pMethods->xClose(f->real);
    f->~File();
    p->pMethods = nullptr;
    return rc;
  }
  f->wal = (flags & SQLITE_OPEN_WAL) != 0;
  p->pMethods = &kMethods;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) { return g_base->xDelete(g_base, name, sync_dir); }
int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_base->xAccess(g_base, name, flags, out);
}
int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_base->xFullPathname(g_base, name, n, out);
}

File* wal_of(sqlite3* db) {
  sqlite3_file* p = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &p) != SQLITE_OK) return nullptr;
  if (!p || p->pMethods != &kMethods) return nullptr;  // no WAL open yet, or not ours
  File* f = self(p);
  return f->wal ? f : nullptr;
}

}  // namespace

const char* name() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = sqlite3_vfs_find(nullptr);
    g_vfs = *g_base;  // the time, randomness, sleep and library-loading methods as they are
    g_vfs.pNext = nullptr;
    g_vfs.zName = "mmgen-journal";
    g_vfs.szOsFile = int(kFileBytes) + g_base->szOsFile;
    g_vfs.xOpen = x_open;
    g_vfs.xDelete = x_delete;
    g_vfs.xAccess = x_access;
    g_vfs.xFullPathname = x_full_pathname;
    sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0);
  });
  return g_vfs.zName;
}

int flush(sqlite3* db) {
  File* f = wal_of(db);
  return f ? write_out(f) : SQLITE_OK;
}

long long held_bytes(sqlite3* db) {
  File* f = wal_of(db);
  return f ? static_cast<long long>(f->held.size()) : 0;
}

}  // namespace mmgen::broker::journal_vfs
