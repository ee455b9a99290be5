"""The base class of every error a user can fix: a bad config, input or data, a trial log that does not match, search
outputs out of date. The command line prints these as their message, without a traceback.

A module that imports nothing, so the command line tells them from bugs without importing the modules that raise
them: those import TensorFlow, which took 8 s on 2 cores before a config error could be printed."""


class UserError(Exception):
    """An error whose message names the problem and what to change."""

    # Autograph re-raises an error from converted code (a tf.data map, a tf.function) as its own type only if that
    # type's __init__ is Exception's; a subclass of ValueError would otherwise reach the caller as a StagingError.
    __init__ = Exception.__init__
