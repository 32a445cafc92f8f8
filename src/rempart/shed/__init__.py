"""Availability: admission control by criticality and data-plane configuration.

Modules: ``classes`` (criticality), ``patterns``/``classify`` (routes), ``config`` ([shed] table),
``limiter`` (gradient concurrency limit), ``throttle`` (client-side throttling), ``admission``
(shares per class), ``haproxy_config``/``fdlimit``/``maps``/``runtime`` (HAProxy data plane),
``controller`` (control loop), ``episodes`` (shedding episodes in the log, journal and incident
report), ``status``/``metrics``/``cli`` (reporting), ``middleware`` (ASGI).
"""

from rempart.shed.middleware import AdmissionMiddleware

__all__ = ["AdmissionMiddleware"]
