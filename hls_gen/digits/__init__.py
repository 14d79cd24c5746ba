"""The digits job behind ``bitfab demo``: reference models (`models`), training
(`train`) and the demo itself (`demo`), on scikit-learn's bundled digits."""
