/**
 * strata.tables.json: the table definitions (DESIGN §1), validated once with messages that name
 * the bad field, then frozen.
 *
 *   {"tables":[{"name":"users","key":"user_id","topic":"strata.deltas.users","max_age_ms":0,
 *     "features":[{"name":"age","type":"int64"},{"name":"emb","type":"float32[8]"}]}]}
 */
import { readFileSync } from "node:fs";
import { ConfigError, errorMessage } from "../shared/errors.js";
import {
  FEATURE_NAME_PATTERN,
  TABLE_NAME_PATTERN,
  parseFeatureKind,
  type FeatureSpec,
  type FeatureType,
  type TableSchema,
} from "../format/schema.js";

export interface TablesConfig {
  readonly tables: readonly TableSchema[];
  /** Where it was read from, for messages. */
  readonly source: string;
}

export const DEFAULT_TOPIC_PREFIX = "strata.deltas.";
const MAX_FEATURES = 4096;

export function loadTablesConfig(path: string): TablesConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`Cannot read table config "${path}": ${errorMessage(err)}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`Cannot parse table config "${path}": ${errorMessage(err)}`, { cause: err });
  }
  return parseTablesConfig(json, path);
}

export function parseTablesConfig(json: unknown, source = "<inline>"): TablesConfig {
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(`Invalid table config "${source}": ${field} ${problem}`);
  };
  if (!isObject(json) || !Array.isArray(json.tables)) fail("tables", "must be an array");
  const rawTables = (json as { tables: unknown[] }).tables;
  const names = new Set<string>();
  const tables = rawTables.map((raw, t): TableSchema => {
    const at = `tables[${t}]`;
    if (!isObject(raw)) return fail(at, "must be an object");
    const name = raw.name;
    if (typeof name !== "string" || !TABLE_NAME_PATTERN.test(name)) {
      fail(`${at}.name`, `must match ${TABLE_NAME_PATTERN} (got ${JSON.stringify(name)})`);
    }
    const tableName = name as string;
    if (names.has(tableName)) fail(`${at}.name`, `repeats table "${tableName}"`);
    names.add(tableName);
    const key = raw.key;
    if (typeof key !== "string" || key.length === 0) fail(`${at}.key`, "must be a non-empty string");
    const topic = raw.topic ?? DEFAULT_TOPIC_PREFIX + tableName;
    if (typeof topic !== "string" || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
      fail(`${at}.topic`, `must be a Kafka topic name (got ${JSON.stringify(topic)})`);
    }
    const maxAgeMs = raw.max_age_ms ?? 0;
    if (typeof maxAgeMs !== "number" || !Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) {
      fail(`${at}.max_age_ms`, `must be a non-negative integer (got ${JSON.stringify(maxAgeMs)})`);
    }
    if (!Array.isArray(raw.features) || raw.features.length === 0) {
      fail(`${at}.features`, "must be a non-empty array");
    }
    const rawFeatures = raw.features as unknown[];
    if (rawFeatures.length > MAX_FEATURES) fail(`${at}.features`, `has more than ${MAX_FEATURES} entries`);
    const featureNames = new Set<string>();
    const features = rawFeatures.map((f, i): FeatureSpec => {
      const fat = `${at}.features[${i}]`;
      if (!isObject(f)) return fail(fat, "must be an object");
      if (typeof f.name !== "string" || !FEATURE_NAME_PATTERN.test(f.name)) {
        fail(`${fat}.name`, `must match ${FEATURE_NAME_PATTERN} (got ${JSON.stringify(f.name)})`);
      }
      const fname = f.name as string;
      if (fname === key) fail(`${fat}.name`, `repeats the key "${fname}"`);
      if (featureNames.has(fname)) fail(`${fat}.name`, `repeats feature "${fname}"`);
      featureNames.add(fname);
      if (typeof f.type !== "string" || parseFeatureKind(f.type) === null) {
        fail(
          `${fat}.type`,
          `must be float32, float64, int64, bool, string, bytes or float32[N] (got ${JSON.stringify(f.type)})`,
        );
      }
      return Object.freeze({ name: fname, type: f.type as FeatureType });
    });
    return Object.freeze({
      name: tableName,
      key: key as string,
      topic: topic as string,
      maxAgeMs: maxAgeMs as number,
      features: Object.freeze(features),
    });
  });
  return Object.freeze({ tables: Object.freeze(tables), source });
}

export function findTable(config: TablesConfig, name: string): TableSchema | undefined {
  return config.tables.find((t) => t.name === name);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
