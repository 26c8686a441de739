"""Bridges between a running engine and the outside: MQTT, OSC, and the WebSocket overlay page.

A bridge gets a `link`: anything with `async apply(command)` (raises cuecast.control.CommandError) and
`subscribe()` (an async iterator of cuecast.control events) — an Engine is one. Bridges know the
command and event types of cuecast.control and nothing else of the engine.
"""
