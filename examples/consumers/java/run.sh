#!/usr/bin/env bash
# Runs ConsumeSingleObject.java with Java 17's source launcher. The jars: Apache Avro 1.8.2 and its
# Jackson 1 from Debian (libavro-java), lz4-java and slf4j from Debian, kafka-clients from lib/
# (`make consumers-deps` puts it there; see README.md for where it comes from).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
share="${JAVA_SHARE:-/usr/share/java}"
cp="$here/lib/kafka-clients.jar"
for jar in avro jackson-core-asl jackson-mapper-asl lz4-java slf4j-api slf4j-simple; do
  cp="$cp:$share/$jar.jar"
done
for jar in ${cp//:/ }; do
  [ -f "$jar" ] || { echo "missing $jar: run \`make consumers-deps\`" >&2; exit 2; }
done
# Kafka's own INFO lines would mix with the records on stdout.
exec java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err \
  -cp "$cp" "$here/ConsumeSingleObject.java" "$@"
