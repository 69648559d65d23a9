"""Non-learning baselines that the models are compared with.

:mod:`.sep_blend`
    BlendHunter's source-extraction baseline for blend identification: ``sep`` (SExtractor)
    detections matched to the true galaxy positions.
"""

from .sep_blend import label_from_detections, run_sep_baseline, sep_predict, sep_summary, stamp_centre

__all__ = ["label_from_detections", "run_sep_baseline", "sep_predict", "sep_summary", "stamp_centre"]
