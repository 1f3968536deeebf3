#include "journal.hpp"

#include <sqlite3.h>

#include "journal_vfs.hpp"
#include "mmgen/codec.hpp"

namespace mmgen::broker {
namespace {

using proto::JobState;

// ---- a thin prepared-statement wrapper ---------------------------------------------

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) != SQLITE_OK)
      throw JournalError(std::string("journal: prepare failed: ") + sqlite3_errmsg(db) + " in: " + sql);
  }
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds 1-based parameters; SQLITE_STATIC: the caller keeps the data alive until step().
  Statement& text(int i, std::string_view v) {
    check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_STATIC));
    return *this;
  }
  Statement& text_or_null(int i, std::string_view v) {
    if (v.empty()) check(sqlite3_bind_null(s_, i));
    else text(i, v);
    return *this;
  }
  Statement& blob(int i, std::string_view v) {
    check(sqlite3_bind_blob(s_, i, v.data(), int(v.size()), SQLITE_STATIC));
    return *this;
  }
  Statement& integer(int i, std::int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Statement& real(int i, double v) {
    check(sqlite3_bind_double(s_, i, v));
    return *this;
  }

  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw JournalError(std::string("journal: ") + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    reset();
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  std::string_view col_text(int i) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
    return p ? std::string_view(p, std::size_t(sqlite3_column_bytes(s_, i))) : std::string_view();
  }
  std::string_view col_blob(int i) const {
    auto p = static_cast<const char*>(sqlite3_column_blob(s_, i));
    return p ? std::string_view(p, std::size_t(sqlite3_column_bytes(s_, i))) : std::string_view();
  }
  std::int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }
  double col_real(int i) const { return sqlite3_column_double(s_, i); }
  bool col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw JournalError(std::string("journal: bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// Resets a statement when a read is done, even on an exception.
struct Resetter {
  Statement& s;
  ~Resetter() { s.reset(); }
};

// The journal VFS holds a transaction's WAL frames back until this (see
// journal_vfs.hpp); a commit is acknowledged only after it.
void flush_wal(sqlite3* db) {
  if (int rc = journal_vfs::flush(db); rc != SQLITE_OK)
    throw JournalError(std::string("journal: writing the WAL failed: ") + sqlite3_errstr(rc));
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw JournalError("journal: " + msg);
  }
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY,            -- submission order
  id TEXT NOT NULL UNIQUE,
  service TEXT NOT NULL,
  model TEXT NOT NULL,
  key TEXT,                           -- NULL: no idempotency key
  params BLOB NOT NULL,               -- msgpack map
  inputs BLOB NOT NULL,               -- msgpack {"inputs": [{name, mime, size}...]}
  priority INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  created_s REAL NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  worker TEXT NOT NULL,
  updated_s REAL NOT NULL,
  cancel_requested INTEGER NOT NULL,
  error_code TEXT,
  error_message TEXT,
  finished_s REAL,                    -- = updated_s once final, else NULL (for TTL collection)
  result BLOB,                        -- RESULT body (msgpack) once succeeded
  inline_inputs BLOB,                 -- packed small input blobs (BlobStore)
  inline_outputs BLOB                 -- packed small output blobs
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key) WHERE key IS NOT NULL;
-- Not a partial index on updated_s WHERE state is final: updating a column
-- that both keys and filters an index makes SQLite plan UPDATEs with an
-- ephemeral table (a malloc/free of a page cache per statement).
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_s) WHERE finished_s IS NOT NULL;
PRAGMA user_version = 1;
)sql";

constexpr const char* kColumns =
    "id, service, model, key, params, inputs, priority, timeout_ms, created_s, state, attempts, "
    "worker, updated_s, cancel_requested, error_code, error_message";

// ---- inputs metadata as a msgpack map ------------------------------------------------

std::string encode_inputs(const std::vector<proto::BlobMeta>& inputs) {
  ValueArray arr;
  arr.reserve(inputs.size());
  for (const auto& b : inputs)
    arr.emplace_back(ValueMap{{"name", b.name}, {"mime", b.mime}, {"size", b.size}});
  return proto::encode(ValueMap{{"inputs", std::move(arr)}});
}

std::vector<proto::BlobMeta> decode_inputs(std::string_view bytes) {
  std::vector<proto::BlobMeta> out;
  if (bytes.empty()) return out;
  ValueMap m;
  proto::decode(bytes, m);
  auto it = m.find("inputs");
  if (it == m.end() || !it->second.is_array()) return out;
  for (const auto& v : it->second.as_array()) {
    if (!v.is_map()) continue;
    const Params p(v.as_map());
    out.push_back(proto::BlobMeta{p.get_string("name", ""), p.get_string("mime", ""),
                                  std::uint64_t(p.get_int("size", 0, 0))});
  }
  return out;
}

JobRecord read_record(const Statement& s) {
  auto spec = std::make_shared<JobSpec>();
  spec->id = s.col_text(0);
  spec->service = s.col_text(1);
  spec->model = s.col_text(2);
  spec->key = s.col_text(3);
  if (auto params = s.col_blob(4); !params.empty()) proto::decode(params, spec->params);
  spec->inputs = decode_inputs(s.col_blob(5));
  spec->priority = int(s.col_int(6));
  spec->timeout_ms = std::uint64_t(s.col_int(7));
  spec->created_s = s.col_real(8);
  JobStatus st;
  st.state = proto::job_state_from_string(s.col_text(9)).value_or(JobState::failed);
  st.attempts = std::uint32_t(s.col_int(10));
  st.worker = s.col_text(11);
  st.updated_s = s.col_real(12);
  st.cancel_requested = s.col_int(13) != 0;
  if (!s.col_null(14))
    st.failure = Failure{proto::error_code_from_string(s.col_text(14)), std::string(s.col_text(15))};
  return JobRecord{std::move(spec), std::move(st)};
}

std::string select(const char* tail) { return std::string("SELECT ") + kColumns + " FROM jobs " + tail; }

}  // namespace

// ---- the connection and its statements -------------------------------------------------

struct Journal::Impl {
  sqlite3* db = nullptr;
  bool in_tx = false;
  std::unique_ptr<Statement> begin, commit, insert, update, update_with_result, store_result,
      load_result, load_inputs, load_outputs, find, find_by_key, recent_all, recent_service,
      unfinished, expired, delete_job;

  void open_tx() {
    if (!in_tx) {
      begin->run();
      in_tx = true;
    }
  }
  ~Impl() {
    // Statements first: sqlite3_close refuses while any is alive.
    for (auto* s : {&begin, &commit, &insert, &update, &update_with_result, &store_result,
                    &load_result, &load_inputs, &load_outputs, &find, &find_by_key, &recent_all,
                    &recent_service, &unfinished, &expired, &delete_job})
      s->reset();
    if (db) sqlite3_close(db);
  }
};

Journal::Journal(const std::filesystem::path& dir) : impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw JournalError("journal: cannot create " + dir.string() + ": " + ec.message());
  const std::string path = (dir / "journal.db").string();
  Impl& I = *impl_;
  if (sqlite3_open_v2(path.c_str(), &I.db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      journal_vfs::name()) != SQLITE_OK)
    throw JournalError("journal: cannot open " + path + ": " +
                       (I.db ? sqlite3_errmsg(I.db) : "out of memory"));
  // 1 KiB pages (new journals only; an existing file keeps its size): a job's
  // row is a few hundred bytes, and each commit writes whole pages to the WAL,
  // so smaller pages cut the bytes per commit (measured standalone: 21 -> 17.5
  // µs of CPU per job for the two commits, with the coalescing VFS).
  exec(I.db, "PRAGMA page_size=1024");
  // Exclusive before the first access: no shared-memory index, and a second
  // broker on this directory gets SQLITE_BUSY instead of a share of our state.
  exec(I.db, "PRAGMA locking_mode=EXCLUSIVE");
  try {
    exec(I.db, "PRAGMA journal_mode=WAL");
  } catch (const JournalError& e) {
    throw JournalError(std::string(e.what()) + " (is another broker using " + dir.string() + "?)");
  }
  exec(I.db, "PRAGMA synchronous=NORMAL");
  // Checkpoints (the only fsyncs) every ~40 MB of WAL instead of ~4 MB, and a
  // page cache that holds the hot part of the job table.
  exec(I.db, "PRAGMA wal_autocheckpoint=10000");
  exec(I.db, "PRAGMA cache_size=-16384");
  exec(I.db, kSchema);
  flush_wal(I.db);

  auto prep = [&](const std::string& sql) { return std::make_unique<Statement>(I.db, sql.c_str()); };
  I.begin = prep("BEGIN");
  I.commit = prep("COMMIT");
  I.insert = prep(
      "INSERT INTO jobs (id, service, model, key, params, inputs, priority, timeout_ms, created_s, "
      "state, attempts, worker, updated_s, cancel_requested, error_code, error_message, finished_s, "
      "inline_inputs) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
      "ON CONFLICT(id) DO UPDATE SET state = ?10, attempts = ?11, worker = ?12, updated_s = ?13, "
      "cancel_requested = ?14, error_code = ?15, error_message = ?16, finished_s = ?17");
  I.update = prep(
      "UPDATE jobs SET state = ?2, attempts = ?3, worker = ?4, updated_s = ?5, "
      "cancel_requested = ?6, error_code = ?7, error_message = ?8, finished_s = ?9, "
      "inline_inputs = CASE WHEN ?9 IS NULL THEN inline_inputs END WHERE id = ?1");
  I.update_with_result = prep(
      "UPDATE jobs SET state = ?2, attempts = ?3, worker = ?4, updated_s = ?5, "
      "cancel_requested = ?6, error_code = ?7, error_message = ?8, finished_s = ?9, "
      "inline_inputs = CASE WHEN ?9 IS NULL THEN inline_inputs END, "
      "result = ?10, inline_outputs = ?11 WHERE id = ?1");
  I.store_result = prep("UPDATE jobs SET result = ?2, inline_outputs = ?3 WHERE id = ?1");
  I.load_result = prep("SELECT result FROM jobs WHERE id = ?1 AND result IS NOT NULL");
  I.load_inputs = prep("SELECT inline_inputs FROM jobs WHERE id = ?1");
  I.load_outputs = prep("SELECT inline_outputs FROM jobs WHERE id = ?1");
  I.find = prep(select("WHERE id = ?1"));
  I.find_by_key = prep("SELECT id FROM jobs WHERE key = ?1 ORDER BY seq DESC LIMIT 1");
  I.recent_all = prep(select("ORDER BY seq DESC LIMIT ?1"));
  I.recent_service = prep(select("WHERE service = ?2 ORDER BY seq DESC LIMIT ?1"));
  I.unfinished = prep(select("WHERE state IN ('queued', 'running') ORDER BY seq"));
  I.expired = prep("SELECT id FROM jobs WHERE finished_s < ?1 ORDER BY finished_s LIMIT ?2");
  I.delete_job = prep("DELETE FROM jobs WHERE id = ?1");
}

Journal::~Journal() {
  try {
    commit();
  } catch (...) {
    // Closing without the last commit loses only what was never acknowledged.
  }
}

namespace {
void bind_status(Statement& s, int first, const JobStatus& st, std::string_view code) {
  s.text(first, proto::to_string(st.state))
      .integer(first + 1, st.attempts)
      .text(first + 2, st.worker)
      .real(first + 3, st.updated_s)
      .integer(first + 4, st.cancel_requested ? 1 : 0);
  if (st.failure) s.text(first + 5, code).text(first + 6, st.failure->message);
  if (proto::is_final(st.state)) s.real(first + 7, st.updated_s);
}
}  // namespace

void Journal::insert(const JobSpec& spec, const JobStatus& status, std::string_view inline_inputs) {
  Impl& I = *impl_;
  I.open_tx();
  const std::string params = proto::encode(spec.params);
  const std::string inputs = encode_inputs(spec.inputs);
  const std::string_view code = status.failure ? proto::to_string(status.failure->code) : "";
  Statement& s = *I.insert;
  s.text(1, spec.id).text(2, spec.service).text(3, spec.model).text_or_null(4, spec.key);
  s.blob(5, params).blob(6, inputs).integer(7, spec.priority);
  s.integer(8, std::int64_t(spec.timeout_ms)).real(9, spec.created_s);
  bind_status(s, 10, status, code);
  if (!inline_inputs.empty()) s.blob(18, inline_inputs);
  s.run();
}

void Journal::update(const std::string& id, const JobStatus& status) {
  Impl& I = *impl_;
  I.open_tx();
  const std::string_view code = status.failure ? proto::to_string(status.failure->code) : "";
  Statement& s = *I.update;
  s.text(1, id);
  bind_status(s, 2, status, code);
  s.run();
}

void Journal::update(const std::string& id, const JobStatus& status, std::string_view body,
                     std::string_view inline_outputs) {
  Impl& I = *impl_;
  I.open_tx();
  const std::string_view code = status.failure ? proto::to_string(status.failure->code) : "";
  Statement& s = *I.update_with_result;
  s.text(1, id);
  bind_status(s, 2, status, code);
  s.blob(10, body);
  if (!inline_outputs.empty()) s.blob(11, inline_outputs);
  s.run();
}

void Journal::store_result(const std::string& id, std::string_view body,
                           std::string_view inline_outputs) {
  impl_->open_tx();
  Statement& s = *impl_->store_result;
  s.text(1, id).blob(2, body);
  if (!inline_outputs.empty()) s.blob(3, inline_outputs);
  s.run();
}

void Journal::commit() {
  Impl& I = *impl_;
  if (!I.in_tx) return;
  I.in_tx = false;  // even if COMMIT fails, the next write must start a new transaction
  I.commit->run();
  flush_wal(I.db);  // only now is the transaction in the kernel, safe from a SIGKILL
}

bool Journal::in_transaction() const { return impl_->in_tx; }

std::vector<JobRecord> Journal::load_unfinished() {
  Statement& s = *impl_->unfinished;
  Resetter r{s};
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_record(s));
  return out;
}

std::optional<std::string> Journal::load_result(const std::string& id) {
  Statement& s = *impl_->load_result;
  Resetter r{s};
  s.text(1, id);
  if (!s.step()) return std::nullopt;
  return std::string(s.col_blob(0));
}

std::string Journal::load_inline(const std::string& id, BlobDir dir) {
  Statement& s = dir == BlobDir::in ? *impl_->load_inputs : *impl_->load_outputs;
  Resetter r{s};
  s.text(1, id);
  if (!s.step()) return {};
  return std::string(s.col_blob(0));
}

std::optional<JobRecord> Journal::find(std::string_view id) {
  Statement& s = *impl_->find;
  Resetter r{s};
  s.text(1, id);
  if (!s.step()) return std::nullopt;
  return read_record(s);
}

std::optional<std::string> Journal::find_id_by_key(std::string_view key) {
  if (key.empty()) return std::nullopt;
  Statement& s = *impl_->find_by_key;
  Resetter r{s};
  s.text(1, key);
  if (!s.step()) return std::nullopt;
  return std::string(s.col_text(0));
}

std::vector<JobRecord> Journal::recent(std::string_view service, std::uint32_t limit) {
  Statement& s = service.empty() ? *impl_->recent_all : *impl_->recent_service;
  Resetter r{s};
  s.integer(1, limit);
  if (!service.empty()) s.text(2, service);
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_record(s));
  return out;
}

std::vector<std::string> Journal::collect_expired(double cutoff_s, std::size_t max) {
  Impl& I = *impl_;
  std::vector<std::string> ids;
  {
    Statement& s = *I.expired;
    Resetter r{s};
    s.real(1, cutoff_s).integer(2, std::int64_t(max));
    while (s.step()) ids.emplace_back(s.col_text(0));
  }
  if (ids.empty()) return ids;
  I.open_tx();
  for (const auto& id : ids) I.delete_job->text(1, id).run();
  return ids;
}

}  // namespace mmgen::broker
