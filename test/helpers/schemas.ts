/** Table schemas shared by unit tests. */
import type { TableSchema } from "../../src/format/schema.js";

/** What the storage unit tests write and read: a number, a vector and a string. */

export const usersSchema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "strata.deltas.users",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "emb", type: "float32[2]" },
    { name: "city", type: "string" },
  ],
};

/** What the delta decoding tests send: one feature of every type. */
export const deltaSchema: TableSchema = {
  name: "users",
  key: "user_id",
  topic: "strata.deltas.users",
  maxAgeMs: 0,
  features: [
    { name: "age", type: "int64" },
    { name: "score", type: "float64" },
    { name: "ctr", type: "float32" },
    { name: "active", type: "bool" },
    { name: "city", type: "string" },
    { name: "blob", type: "bytes" },
    { name: "emb", type: "float32[3]" },
  ],
};
