#!/usr/bin/env node
// Read unit21-kafka-bridge topics written in Avro single-object encoding (the default mode) with
// kafkajs + avsc, using only the self-contained schemas/<topic>.avsc files.
//
//   npm ci                                   # kafkajs, avsc, lz4-napi (package-lock.json)
//   node consume_single_object.js --bootstrap-servers localhost:9092 --schemas ../../../schemas unit21.alert
//   node consume_single_object.js --schemas ../../../schemas --check-schemas   # parse each file, print fingerprints
//
// Each value is C3 01 + the 8-byte CRC-64-AVRO fingerprint (little-endian) of the writer schema's
// Parsing Canonical Form + the Avro body. Prints one JSON line per record.
'use strict';

const fs = require('fs');
const path = require('path');
const avro = require('avsc');
const lz4 = require('lz4-napi');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');

// kafkajs ships no LZ4 codec and the bridge compresses with LZ4 by default: without this, the first
// fetch fails with "KafkaJSNotImplemented: LZ4 compression not implemented". Kafka's LZ4 is the
// standard LZ4 frame format; lz4-napi's prebuilt binary comes from npm as an optional dependency.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => lz4.compressFrame(encoder.buffer),
  decompress: async (buffer) => lz4.decompressFrame(buffer),
});

const MAGIC = Buffer.from([0xc3, 0x01]);

// JavaScript numbers hold integers exactly only up to 2^53; Unit21 ids and epoch milliseconds are
// Avro longs. avsc refuses to decode a long it cannot represent, so decode every long as a BigInt.
const bigintLong = avro.types.LongType.__with({
  fromBuffer: (buf) => buf.readBigInt64LE(),
  toBuffer: (n) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: BigInt,
  toJSON: Number,
  isValid: (n) => typeof n === 'bigint',
  compare: (a, b) => (a === b ? 0 : a < b ? -1 : 1),
});

// CRC-64-AVRO (the Avro specification's Rabin fingerprint).
const EMPTY = 0xc15d213aa4d7a795n;
const TABLE = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j += 1) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  return fp;
});

function crc64Avro(text) {
  let fp = EMPTY;
  for (const byte of Buffer.from(text, 'utf8')) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(byte)) & 0xffn)];
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp); // little-endian, as the single-object header carries it
  return out;
}

// fingerprint (hex) -> { name, type }, one entry per .avsc file in the folder, each parsed alone.
function loadSchemas(directory) {
  const byFingerprint = new Map();
  for (const file of fs.readdirSync(directory).filter((f) => f.endsWith('.avsc')).sort()) {
    const schema = JSON.parse(fs.readFileSync(path.join(directory, file), 'utf8'));
    const type = avro.Type.forSchema(schema, { registry: { long: bigintLong } });
    // avsc's type.schema() is the Parsing Canonical Form (no docs, defaults or custom properties).
    const canonical = JSON.stringify(type.schema());
    byFingerprint.set(crc64Avro(canonical).toString('hex'), { file, name: type.name, type });
  }
  return byFingerprint;
}

function decode(value, schemas) {
  if (!value || value.length < 10 || !value.subarray(0, 2).equals(MAGIC)) {
    throw new Error('not Avro single-object encoded (a registry-framed value starts with 00)');
  }
  const fingerprint = value.subarray(2, 10).toString('hex');
  const known = schemas.get(fingerprint);
  if (!known) throw new Error(`unknown schema fingerprint ${fingerprint}: get the current schemas`);
  return { fingerprint, name: known.name, record: known.type.fromBuffer(value.subarray(10)) };
}

// JSON.stringify cannot print a BigInt; print it as a JSON number with every digit.
function toJsonLine(object) {
  const text = JSON.stringify(object, (_, v) => (typeof v === 'bigint' ? `\u0000bigint:${v}` : v));
  return text.replace(/"\\u0000bigint:(-?\d+)"/g, '$1');
}

function parseArgs(argv) {
  const args = { topics: [], timeout: 30, schemas: path.resolve(__dirname, '../../../schemas') };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--bootstrap-servers') args.bootstrap = argv[(i += 1)];
    else if (arg === '--schemas') args.schemas = argv[(i += 1)];
    else if (arg === '--timeout') args.timeout = Number(argv[(i += 1)]);
    else if (arg === '--check-schemas') args.checkSchemas = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else args.topics.push(arg);
  }
  if (!args.checkSchemas && (!args.bootstrap || args.topics.length === 0)) {
    throw new Error('usage: consume_single_object.js --bootstrap-servers HOST:PORT [--schemas DIR] TOPIC...');
  }
  return args;
}

// Every record now in the topics, then exit: read each partition to its high watermark, then on
// until nothing arrives for a second. A long-running job keeps consuming and commits its offsets.
async function readToEnd(kafka, topics, timeoutSeconds, onMessage) {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map();
  for (const topic of topics) {
    for (const { partition, high } of await admin.fetchTopicOffsets(topic)) {
      if (BigInt(high) > 0n) ends.set(`${topic}/${partition}`, BigInt(high));
    }
  }
  await admin.disconnect();
  // kafkajs has no assign(): a fresh group id reads from the beginning and commits nothing we reuse.
  // Short group timings suit a one-shot reader that is its group's only member: with kafkajs'
  // defaults the join waited ~15 s and the last fetch up to 5 s. A long-running job keeps them.
  const consumer = kafka.consumer({
    groupId: `unit21-example-node-${process.pid}-${Date.now()}`,
    rebalanceTimeout: 1000,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 500,
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let last = Date.now();
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      last = Date.now();
      onMessage(topic, partition, message);
      const key = `${topic}/${partition}`;
      if (ends.has(key) && BigInt(message.offset) + 1n >= ends.get(key)) ends.delete(key);
    },
  });
  const deadline = Date.now() + timeoutSeconds * 1000;
  while ((ends.size > 0 || Date.now() - last < 1000) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await consumer.disconnect();
  if (ends.size > 0) throw new Error(`partitions not read to their end in ${timeoutSeconds} s: ${[...ends.keys()]}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const schemas = loadSchemas(args.schemas);
  if (args.checkSchemas) {
    for (const [fingerprint, { file, name }] of schemas) console.log(`${file}\t${name}\t${fingerprint}`);
    return;
  }
  const kafka = new Kafka({
    clientId: 'unit21-example-node',
    brokers: args.bootstrap.split(','),
    logLevel: logLevel.WARN,
  });
  await readToEnd(kafka, args.topics, args.timeout, (topic, partition, message) => {
    const { fingerprint, name, record } = decode(message.value, schemas);
    const headers = Object.fromEntries(
      Object.entries(message.headers || {}).map(([k, v]) => [k, Buffer.from(v).toString('utf8')]),
    );
    if (headers.schema_fingerprint !== fingerprint) {
      throw new Error(`header schema_fingerprint ${headers.schema_fingerprint} != value's ${fingerprint}`);
    }
    const line = {
      topic,
      partition,
      offset: Number(message.offset),
      key: message.key ? message.key.toString('utf8') : null,
      fingerprint,
      schema: name,
      value: record,
    };
    console.log(toJsonLine(line));
  });
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
