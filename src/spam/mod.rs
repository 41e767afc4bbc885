//! Keeping spam out of the INBOX. `bayes` is the learning filter's pure core (tokens and
//! the score); `learn` applies it to deliveries and trains it from what each person does.

pub mod bayes;
pub mod learn;
