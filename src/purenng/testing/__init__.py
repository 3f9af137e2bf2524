"""Testing helpers shipped with purenng: a pytest plugin and the transport conformance kit."""
