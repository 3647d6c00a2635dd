"""Canary and shadow rollouts of a new version through the Api function (modeldrop.json `rollout`).

SageMaker's own deployment guardrails (traffic shifting, shadow variants) exclude serverless endpoints
(AWS docs: deployment-guardrails-exclusions.html, shadow-tests-exclusions.html), so modeldrop does it in
front of them. The parts, one module each:
- config.py    the `rollout` section of modeldrop.json (CanaryRollout, ShadowRollout)
- routing.py   which endpoint answers a request, from the model item's `rollout` attribute
- metrics.py   per-version figures as CloudWatch metrics (Powertools, a Version dimension)
- figures.py   those figures read back with GetMetricData
- judge.py     the decision after the bake: promote, roll back, or keep baking (a pure function)
- agreement.py whether the candidate's answer agrees with the live one (shadow)
- state.py     the rollout attribute of the model item: written by the bake, read by the Api function
- bake.py      the bake's steps for the deploy state machine and the API's promote/abort
"""
