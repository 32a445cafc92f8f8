"""Log tailing where no hook exists: follow log files, parse outcomes, report them.

One module per job: `follow` reads the complete lines appended to a path across rotations and
restarts; `tailer` parses them with a parser per file, hands the events to a sink and keeps the
offsets file; `sinks` feeds the events in as attempts (this process's engine, a running server
over the native API, or standard output); `settings` reads the `[tail]` table. The glue that
runs a tailer inside `rempart serve` is `rempart.adapters.logtail`, the command line's
`rempart tail` is in `rempart.adapters.cli`.

There is no hook to refuse a login, so enforcement goes through the lists: after each failure
the sink asks for a verdict, which is where the policy's `block = {...}` rules add the source to
the block list; export it to the data plane with `GET /?command=getBL`. Bad lines are counted and
skipped, never fatal.
"""
