// Small helpers for absl::Status plumbing, shared by every library.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AGORA_CONCAT_INNER_(a, b) a##b
#define AGORA_CONCAT_(a, b) AGORA_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define AGORA_RETURN_IF_ERROR(expr)                 \
  do {                                              \
    if (absl::Status _agora_st = (expr); !_agora_st.ok()) \
      return _agora_st;                             \
  } while (0)

// `lhs = value of expr` when `expr` (an absl::StatusOr) holds a value; otherwise returns its status.
#define AGORA_ASSIGN_OR_RETURN(lhs, expr) \
  AGORA_ASSIGN_OR_RETURN_IMPL_(AGORA_CONCAT_(_agora_sor_, __LINE__), lhs, expr)
#define AGORA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()
