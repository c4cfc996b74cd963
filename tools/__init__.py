"""Scripts and helpers around the app that are not part of it: starting it for browser tests, benchmarks and
screenshots."""
