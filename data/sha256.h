// SHA-256 (FIPS 180-4), for the checksums of prepared data (SHA256SUMS).
#pragma once
#include <string>

namespace switchlora {

// Lower-case hex digest of `bytes`, as sha256sum prints it.
std::string sha256_hex(const std::string& bytes);

}  // namespace switchlora
