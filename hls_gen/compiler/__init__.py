"""The compiler: boards and clocks, mapping, folding and estimates (`plan`,
`engines`), the build flow and its registered steps (`flow`), synthesis
(`synth`), reports and deployment to a board (`deploy`)."""
