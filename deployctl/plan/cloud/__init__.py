"""AWS as data: the CloudFormation template and its security rules."""
