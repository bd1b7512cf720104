// A feed handler in Node: ticks as JSON lines on stdin -> the tick topic, Confluent wire
// format, with stock clients only (kafkajs, @kafkajs/confluent-schema-registry).
//
//   node producer.js [--topic market.ticks] < ticks.jsonl
//   {"symbol": "EURUSD", "ts": 1398920401787000, "bid": 1.38727, "ask": 1.38729}
//
// KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092) and SCHEMA_REGISTRY_URL (default
// http://127.0.0.1:8081, what `spark up` serves; `spark status` prints it).
// The schema is this feed's own: a subset of Spark's Tick contract (no last price, venue
// or source). The registry checks it is compatible and gives it an id; Spark's worker
// reads it into the full contract.
"use strict";
const readline = require("readline");
const { Kafka, Partitioners, logLevel } = require("kafkajs");
const { SchemaRegistry, SchemaType } = require("@kafkajs/confluent-schema-registry");

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const topic = opt("topic", "market.ticks");
const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS || "127.0.0.1:9092").split(",");
const registryUrl = process.env.SCHEMA_REGISTRY_URL || "http://127.0.0.1:8081";
const nullable = (name) => ({ name, type: ["null", "double"], default: null });
const FEED_TICK = {
  type: "record",
  name: "Tick",
  namespace: "io.spark", // the contract's full name, so Avro resolution matches it
  fields: [
    { name: "symbol", type: "string" },
    { name: "ts", type: { type: "long", logicalType: "timestamp-micros" } },
    nullable("bid"),
    nullable("ask"),
    nullable("bid_size"),
    nullable("ask_size"),
  ],
};
const option = (v) => (v === undefined || v === null ? null : v);

async function main() {
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(FEED_TICK) },
    { subject: `${topic}-value` },
  );
  const kafka = new Kafka({ clientId: "node-feed", brokers, logLevel: logLevel.ERROR });
  // the Java client's partitioner (murmur2): a symbol lands where Spark would put it
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let batch = [];
  let sent = 0;
  const flush = async () => {
    if (batch.length) {
      await producer.send({ topic, messages: batch });
      sent += batch.length;
      batch = [];
    }
  };
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const t = JSON.parse(line);
    const value = await registry.encode(id, {
      symbol: t.symbol,
      ts: t.ts,
      bid: option(t.bid),
      ask: option(t.ask),
      bid_size: option(t.bid_size),
      ask_size: option(t.ask_size),
    });
    batch.push({ key: t.symbol, value });
    if (batch.length >= 1000) await flush();
  }
  await flush();
  await producer.disconnect();
  console.log(JSON.stringify({ topic, schema_id: id, sent }));
}

main().catch((err) => {
  console.error(`producer failed: ${err.message}`);
  process.exit(1);
});
