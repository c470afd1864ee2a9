"""Human review inside a run: draw a stratified sample of a run's judged answers, label it
(a local page, the terminal, or an imported spreadsheet), and turn the labels into each judge's
accuracy on *this* run and review-corrected compliance rates with intervals."""
