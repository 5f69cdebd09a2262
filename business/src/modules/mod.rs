//! Security and policy module engines (pure logic, no I/O).
