// Read unit21-kafka-bridge topics written in Avro single-object encoding (the default mode) with the
// Apache Kafka Java client and Apache Avro's BinaryMessageDecoder, using only the self-contained
// schemas/<topic>.avsc files. Prints one JSON line per record.
//
//   ./run.sh --bootstrap-servers localhost:9092 --schemas ../../../schemas unit21.alert unit21.case
//   ./run.sh --schemas ../../../schemas --check-schemas     # parse each file alone, print fingerprints
//
// run.sh puts Apache Avro (1.8.2 or later), kafka-clients, lz4-java and slf4j on the class path and
// runs this file with Java 17's source launcher; in a build, take org.apache.avro:avro and
// org.apache.kafka:kafka-clients from your repository manager.

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ConsumeSingleObject {

    /** One topic file: its schema and a decoder that checks the C3 01 marker and the fingerprint. */
    record Known(String file, Schema schema, BinaryMessageDecoder<GenericRecord> decoder) {}

    /** The single-object header's 8 fingerprint bytes, as hex: CRC-64-AVRO of the canonical form, little-endian. */
    static String fingerprintHex(Schema schema) {
        long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
        return String.format("%016x", Long.reverseBytes(fingerprint));
    }

    /** fingerprint hex -> topic file, every .avsc in the folder parsed alone by a fresh parser. */
    static Map<String, Known> loadSchemas(Path directory) throws IOException {
        Map<String, Known> byFingerprint = new TreeMap<>();
        List<Path> files = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(directory, "*.avsc")) {
            stream.forEach(files::add);
        }
        files.sort(null);
        for (Path file : files) {
            Schema schema = new Schema.Parser().parse(file.toFile());
            BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), schema);
            byFingerprint.put(fingerprintHex(schema), new Known(file.getFileName().toString(), schema, decoder));
        }
        return byFingerprint;
    }

    static String quote(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    static String header(ConsumerRecord<byte[], byte[]> record, String name) {
        Header header = record.headers().lastHeader(name);
        return header == null ? null : new String(header.value(), StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null;
        Path schemasDir = Paths.get("schemas");
        double timeoutSeconds = 30;
        boolean checkSchemas = false;
        List<String> topics = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap-servers" -> bootstrap = args[++i];
                case "--schemas" -> schemasDir = Paths.get(args[++i]);
                case "--timeout" -> timeoutSeconds = Double.parseDouble(args[++i]);
                case "--check-schemas" -> checkSchemas = true;
                default -> {
                    if (args[i].startsWith("-")) {
                        throw new IllegalArgumentException("unknown option " + args[i]);
                    }
                    topics.add(args[i]);
                }
            }
        }
        Map<String, Known> schemas = loadSchemas(schemasDir);
        if (checkSchemas) {
            schemas.forEach((hex, known) ->
                    System.out.println(known.file() + "\t" + known.schema().getFullName() + "\t" + hex));
            return;
        }
        if (bootstrap == null || topics.isEmpty()) {
            throw new IllegalArgumentException("usage: --bootstrap-servers HOST:PORT [--schemas DIR] TOPIC...");
        }

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            // assign, not subscribe: every record now in the topics, with no consumer group to join.
            // A long-running job subscribes with its own group.id and commits its offsets.
            List<TopicPartition> partitions = new ArrayList<>();
            for (String topic : topics) {
                for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(10))) {
                    partitions.add(new TopicPartition(topic, info.partition()));
                }
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> remaining = new HashMap<>();
            consumer.endOffsets(partitions, Duration.ofSeconds(10)).forEach((tp, end) -> {
                if (end > 0) {
                    remaining.put(tp, end);
                }
            });
            long deadline = System.nanoTime() + (long) (timeoutSeconds * 1e9);
            long last = System.nanoTime();
            // To each partition's end, then on until nothing arrives for a second.
            while ((!remaining.isEmpty() || System.nanoTime() - last < 1_000_000_000L)
                    && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    last = System.nanoTime();
                    byte[] value = record.value();
                    String fingerprint = HexFormat.of().formatHex(value, 2, 10);
                    Known known = schemas.get(fingerprint);
                    if (known == null) {
                        throw new IllegalStateException("unknown schema fingerprint " + fingerprint
                                + " at " + record.topic() + "/" + record.partition() + "@" + record.offset());
                    }
                    if (!fingerprint.equals(header(record, "schema_fingerprint"))) {
                        throw new IllegalStateException("header schema_fingerprint "
                                + header(record, "schema_fingerprint") + " != the value's " + fingerprint);
                    }
                    GenericRecord decoded = known.decoder().decode(value);
                    String key = record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8);
                    System.out.println("{\"topic\": " + quote(record.topic())
                            + ", \"partition\": " + record.partition()
                            + ", \"offset\": " + record.offset()
                            + ", \"key\": " + quote(key)
                            + ", \"fingerprint\": " + quote(fingerprint)
                            + ", \"schema\": " + quote(known.schema().getFullName())
                            + ", \"value\": " + GenericData.get().toString(decoded) + "}");
                    TopicPartition tp = new TopicPartition(record.topic(), record.partition());
                    Long end = remaining.get(tp);
                    if (end != null && record.offset() + 1 >= end) {
                        remaining.remove(tp);
                    }
                }
            }
            if (!remaining.isEmpty()) {
                throw new IllegalStateException("partitions not read to their end in time: " + remaining.keySet());
            }
        }
    }
}
