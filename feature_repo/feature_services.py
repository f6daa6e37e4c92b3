"""Feature services: what training reads (point in time) and what serving reads (online).

Both read the same features so that training and serving cannot drift apart; the cross features
(user_has_watched_same_genre_7d, user_watched_same_creator, user_x_content_genre_overlap) are
computed from them at training and request time by flywheel.features.cross.
"""

from content_features import content_features
from feast import FeatureService
from user_features import user_features

training = FeatureService(
    name="training",
    features=[user_features, content_features],
    description="Point-in-time features of the ranking training sets.",
)

serving = FeatureService(
    name="serving",
    features=[user_features, content_features],
    description="Online features of a ranking request (1 user, up to 500 titles).",
)
