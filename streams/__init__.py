"""The drivers of policyloop: replay over a file, the Faust worker on Kafka, and the CLI."""
