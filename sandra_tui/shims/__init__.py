"""The only modules that touch private internals of other libraries, one per library. Each has a
contract test (tests/shims/) that fails loudly, naming the version, when an internal moves."""
