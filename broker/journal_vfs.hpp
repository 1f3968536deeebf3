// A SQLite VFS for the journal that hands each transaction's WAL frames to the
// kernel in one write instead of two per page.
//
// SQLite appends a WAL frame as two writes (a 24-byte header, then the page),
// so one small commit costs ~4-5 pwrite(2) calls; on the broker's hot path
// (two commits per job) their fixed cost was ~6 µs of CPU per job. This VFS
// forwards everything to the default VFS but keeps the writes to a WAL file
// that continue the previous one in memory until `flush`, or until something
// must see the file (a read, a sync, a size query, a truncate, a close, a
// write elsewhere in the file, or 64 KiB gathered).
//
// Durability is unchanged as long as the caller flushes before it tells anyone
// a transaction committed: with synchronous=NORMAL SQLite does not fsync a
// commit either, so what a SIGKILL spares is what reached the kernel, and the
// journal acknowledges nothing before `flush` has returned. If a held-back
// write then fails, SQLite already believes the frames are on disk, so the
// file is poisoned: every later call on it fails, and so does `flush` — the
// broker stops, and WAL recovery at the next start drops the torn commit
// (frames carry checksums), exactly as after a crash.
#pragma once

struct sqlite3;

namespace mmgen::broker::journal_vfs {

// The registered VFS's name, for sqlite3_open_v2 (registered once, on first use).
const char* name();

// Writes out what the WAL of `db`'s main database holds back. Returns SQLITE_OK
// or the SQLite error code of the failed write (the file stays poisoned).
int flush(sqlite3* db);

// Bytes the WAL of `db` currently holds back (for tests).
long long held_bytes(sqlite3* db);

}  // namespace mmgen::broker::journal_vfs
