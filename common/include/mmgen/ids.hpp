// Identifiers: job ids are "j_" + 24 hex digits: 48 bits of unix milliseconds
// (so ids sort by creation) then 48 random bits.
#pragma once

#include <string>
#include <string_view>

namespace mmgen {

std::string new_job_id();
bool is_job_id(std::string_view s);
std::string random_hex(std::size_t n_bytes);

}  // namespace mmgen
