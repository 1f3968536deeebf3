// `mmgen --help`, `mmgen VERB --help` and `mmgen --version`, generated from
// the flag tables so they list exactly what the parser accepts.
#pragma once

#include <string>

#include "cli/args.hpp"

namespace mmgen::cli {

std::string main_help();
std::string verb_help(Verb v);
std::string version_text();

}  // namespace mmgen::cli
