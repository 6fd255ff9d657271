/** The table schema the storage unit tests write and read: a number, a vector and a string. */
import type { TableSchema } from "../../src/format/schema.js";

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
