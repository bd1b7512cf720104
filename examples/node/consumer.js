// An execution system's reader in Node: Spark's signals (or any output topic) decoded with
// the schema the registry serves for each message's id; one JSON line per record.
//
//   node consumer.js [--topic trading.signals] [--limit 100] [--idle-ms 5000] [--first-ms 60000]
//
// Reads from the beginning in a group of its own and stops after --limit records, when
// nothing arrived for --idle-ms after a record, or when none came in --first-ms.
// Same environment as producer.js.
"use strict";
const { Kafka, logLevel } = require("kafkajs");
const { SchemaRegistry } = require("@kafkajs/confluent-schema-registry");

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const topic = opt("topic", "trading.signals");
const limit = Number(opt("limit", "0")) || Infinity;
const idleMs = Number(opt("idle-ms", "5000"));
const firstMs = Number(opt("first-ms", "60000")); // joining a group can take a while
const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS || "127.0.0.1:9092").split(",");
const registryUrl = process.env.SCHEMA_REGISTRY_URL || "http://127.0.0.1:8081";

async function main() {
  const registry = new SchemaRegistry({ host: registryUrl });
  const kafka = new Kafka({ clientId: "node-reader", brokers, logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({
    groupId: `node-reader-${process.pid}-${Date.now()}`,
    // a group of one: short timeouts make the join quick (measured on the embedded
    // broker: 20 s to the first record with kafkajs' defaults, 8 s with these)
    rebalanceTimeout: 3000,
    sessionTimeout: 6000,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  const started = Date.now();
  let last = 0; // when the last record arrived; 0 = none yet
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  await consumer.run({
    eachMessage: async ({ message }) => {
      last = Date.now();
      if (seen >= limit) return;
      const record = await registry.decode(message.value);
      process.stdout.write(`${JSON.stringify(record)}\n`);
      seen += 1;
      if (seen >= limit) done();
    },
  });
  const timer = setInterval(() => {
    const now = Date.now();
    if (last ? now - last > idleMs : now - started > firstMs) done();
  }, 200);
  await finished;
  clearInterval(timer);
  await consumer.disconnect();
  console.error(JSON.stringify({ topic, records: seen }));
}

main().catch((err) => {
  console.error(`consumer failed: ${err.message}`);
  process.exit(1);
});
