"""The process and its stdio API: arguments and signals (`app`), lines in and
out (`stdio`), JSON-RPC (`rpc`), the method table (`methods`), the service
that answers the methods (`service`), error codes (`errors`), logging
(`logs`) and the generated schema (`schema`)."""
