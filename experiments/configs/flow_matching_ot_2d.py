"""Conditional flow matching with mini-batch optimal-transport coupling (Tong et al. 2023,
OT-CFM) on 2-D toys: flow_matching_2d with model.coupling='ot', i.e. each batch's noise is
re-paired with the data by the exact assignment minimising the total squared distance
(scipy's linear_sum_assignment). Launch: ``jgen train flow_matching_ot_2d:checkerboard``.
"""

import importlib.util
from pathlib import Path

ARGS = ("8gaussians", "checkerboard")

_spec = importlib.util.spec_from_file_location(
    "flow_matching_2d_base", Path(__file__).with_name("flow_matching_2d.py")
)
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config(arg: str | None = None, smoke: bool = False):
    return _base.get_config(arg, smoke, coupling="ot")
