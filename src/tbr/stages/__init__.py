"""The pipeline's stages, one module each, in the order tbr.pipeline runs them: data,
reflect, build, train, generate, judge, attribute, evaluate, general, report. Each has `NAME`
and `run(ctx)`, which runs the stage for every unit it has (the run, a (model, source) pair,
a cell, an evaluated model) through tbr.stages.runner.run_stage: skipped when finished,
wiped when stale, its manifest written last."""
