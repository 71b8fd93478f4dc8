"""What a labelwise user's own code imports: the labeling-function decorator (weak supervision;
a function abstains by returning None; see ``docs/weak-supervision.md``)."""

from tasks.weak.functions import LabelingFunction, Row, labeling_function

__all__ = ["LabelingFunction", "Row", "labeling_function"]
