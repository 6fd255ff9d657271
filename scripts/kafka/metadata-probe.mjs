// Readiness probe for scripts/services.sh: one real metadata round trip with kafkajs.
//   node scripts/kafka/metadata-probe.mjs 127.0.0.1:19092
// Exit 0: the broker answered a Metadata request and named itself a broker with a controller.
// Exit 1: it did not (yet). Exit 3: kafkajs cannot be loaded (node_modules not installed).
import process from "node:process";

const broker = process.argv[2];
if (!broker) {
  process.stderr.write("usage: metadata-probe.mjs HOST:PORT\n");
  process.exit(2);
}

let kafkajs;
try {
  kafkajs = await import("kafkajs");
} catch {
  process.exit(3);
}

const { Kafka, logLevel } = kafkajs.default ?? kafkajs;
const admin = new Kafka({
  clientId: "strata-services-probe",
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3000,
  requestTimeout: 5000,
  retry: { retries: 0 },
}).admin();

try {
  await admin.connect();
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length === 0 || cluster.controller == null) {
    throw new Error(`metadata names no broker or no controller: ${JSON.stringify(cluster)}`);
  }
  process.stdout.write(`${JSON.stringify(cluster)}\n`);
  await admin.disconnect();
  process.exit(0);
} catch (err) {
  process.stderr.write(`metadata probe of ${broker} failed: ${err instanceof Error ? err.message : err}\n`);
  await admin.disconnect().catch(() => {});
  process.exit(1);
}
